"""Sweeps: plan every run of a paper table, claim runs atomically in the store, launch them on
this machine or on SLURM (submitit), and report their status (`sri sweep --help`)."""
