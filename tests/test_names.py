"""Names from a store or a user are checked before they become paths (issue 27)."""
import pytest

from sri.names import UnsafeName, check_name, is_safe_name
from sri.sweep.cli import main as sweep_cli


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".hidden", "", "x/../../y", "a\nb", None, 3])
def test_unsafe_names_are_refused(bad):
    assert not is_safe_name(bad)
    with pytest.raises(UnsafeName, match="cannot be used in a file name"):
        check_name(bad, "dataset")


@pytest.mark.parametrize("good", ["blocks", "sri_g", "t3-smoke-1a2b", "seed0", "v1.2"])
def test_plain_names_pass(good):
    assert check_name(good, "row") == good


def test_sweep_id_with_dot_dot_writes_nothing_outside_the_store(tmp_path, capsys):
    store = tmp_path / "store" / "runs"
    code = sweep_cli(["3", "--preset", "smoke", "--rows", "d", "--store", str(store), "--sweep", "../../x",
                      "--dry-run"])
    assert code == 2 and "--sweep '../../x' cannot be used in a file name" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_sbatch_options_cannot_add_lines_to_the_script():
    """Issue 27: a newline in --partition added a command to the sbatch script."""
    from sri.configs import ConfigError
    from sri.sweep.slurm import SlurmOptions

    for bad in ("gpu\nrm -rf ~", "gpu cpu", "a;b"):
        with pytest.raises(ConfigError, match="line breaks"):
            SlurmOptions(partition=bad)
    with pytest.raises(ConfigError, match="line breaks"):
        SlurmOptions(extra={"constraint": "a100\n#SBATCH --x"})
    assert SlurmOptions(partition="gpu-a100", account="proj_1", mem="32G", time="1-00:00:00").partition == "gpu-a100"


def test_absurd_slot_counts_and_image_sizes_are_refused_before_allocating():
    from sri.configs import ConfigError, experiment_config, validate_config

    for key, value in (("num_slots", 1_000_000), ("image_size", 16_384)):
        cfg = experiment_config(3, "d", "blocks", "smoke")
        cfg[key] = value
        cfg["model_options"][key] = value
        with pytest.raises(ConfigError, match="from"):
            validate_config(cfg)


def test_a_tfrecord_header_asking_for_terabytes_is_a_named_error(tmp_path):
    import struct

    from sri.data.errors import DataError
    from sri.data.tfrecord import iter_records, masked_crc32c

    head = struct.pack("<Q", 1 << 40)
    (tmp_path / "x.tfrecords").write_bytes(head + struct.pack("<I", masked_crc32c(head)) + b"abc")
    with pytest.raises(DataError, match="truncated record 0: it declares 1099511627776 bytes"):
        list(iter_records(tmp_path / "x.tfrecords"))
