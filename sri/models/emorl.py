"""EfficientMORL (Emami et al. 2021) as a segregation module: HVAE encoder + iterative refinement.

Facts (EfficientMORL paper, Emami et al. 2021, and its release): a CNN encoder (4 x Conv5x5, 64 ch,
ReLU) plus a 4-d position map
(distances to the four borders) through Linear(4, 64), then LayerNorm -> Linear -> ReLU -> Linear;
a learned initial posterior shared by all slots; L = 3 stochastic layers, each one slot-attention
step (softmax over slots, renormalised over pixels) feeding two GRUs (mean; softplus-variance
parameter) and residual MLPs; a hierarchical "reversed" prior p(z^L) = N(0, I),
p(z^l | z^(l+1)) with analytic KLs summed over slots; iterative amortised refinement of the top
layer's posterior from the layer-normalised gradients of the loss with respect to its parameters
(Linear(4D, 128) -> ELU -> Linear(128, D) -> GRU(D, D) -> heads); the loss of iteration i
(i = 0 the HVAE's posterior, i = I the last refinement) weighted by (I + 3 - i) / (I + 1); the
curriculum I = `refinement_steps` until `curriculum_step`, then `refinement_steps_late`; a
broadcast decoder (z to (H+10)^2 plus a position map, 4 x valid Conv3x3 64 ch ELU, Conv3x3 to 4
channels, log-softmax masks over slots). Choices the facts leave open are marked "(our choice)".
"""
from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

from sri.models.blocks import SpatialBroadcastDecoder
from sri.models.segregation import Segregation, SegregationModule
from sri.objectives import image_nll, kl_normal, kl_std_normal, softplus_std

__all__ = ["border_distances", "EmorlDecoder", "RefinementNetwork", "EmorlSegregation",
           "iteration_weights"]

_HIDDEN = 128  # width of the refinement network (fact) and of our residual / prior MLPs (our choice)


def border_distances(size: int, device: torch.device | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """`[1, 4, size, size]` position map: distances in [0, 1] to the top, bottom, left, right borders."""
    lin = torch.linspace(0.0, 1.0, size, device=device, dtype=dtype)
    rows, cols = torch.meshgrid(lin, lin, indexing="ij")
    return torch.stack((rows, 1.0 - rows, cols, 1.0 - cols)).unsqueeze(0)


def iteration_weights(num_steps: int) -> list[float]:
    """Loss weights of iterations i = 0..I: (I + 3 - i) / (I + 1)."""
    return [(num_steps + 3 - i) / (num_steps + 1) for i in range(num_steps + 1)]


class EmorlDecoder(SpatialBroadcastDecoder):
    """Broadcast decoder: z `[N, D]` tiled to (S+10)^2 + the border-distance map, 4 x valid Conv3x3
    (64, ELU), valid Conv3x3 -> 4 (RGB, mask logit)."""

    def __init__(self, image_size: int, latent_dim: int, width: int = 64) -> None:
        super().__init__(image_size, latent_dim, 4, width=width, final_kernel=3, positions=border_distances)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(rgb `[N, 3, S, S]` after a sigmoid (our choice: images stay in [0, 1]), mask logits `[N, 1, S, S]`)."""
        out = super().forward(z)
        return torch.sigmoid(out[:, :3]), out[:, 3:]

    def decode_slots(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """All slots `z [B, K, D]` at once: (rgb `[B, K, 3, H, W]`, log-masks `[B, K, 1, H, W]`, log-softmax over K)."""
        B, K, D = z.shape
        rgb, logits = self(z.reshape(B * K, D))
        H, W = rgb.shape[-2:]
        return rgb.view(B, K, 3, H, W), torch.log_softmax(logits.view(B, K, 1, H, W).float(), dim=1)


class RefinementNetwork(nn.Module):
    """One refinement step: [mu, s, LN(dL/dmu), LN(dL/ds)] -> Linear(4D,128) -> ELU -> Linear(128,D)
    -> GRU -> (dmu, ds)."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        D = latent_dim
        self.norm_grad_mu = nn.LayerNorm(D)
        self.norm_grad_s = nn.LayerNorm(D)
        self.mlp = nn.Sequential(nn.Linear(4 * D, _HIDDEN), nn.ELU(), nn.Linear(_HIDDEN, D))
        self.gru = nn.GRUCell(D, D)
        self.head_mu = nn.Linear(D, D)
        self.head_s = nn.Linear(D, D)

    def inputs(self, mu: Tensor, s: Tensor, grad_mu: Tensor, grad_s: Tensor) -> Tensor:
        """The network's input `[..., 4D]`: parameters and their layer-normalised loss gradients."""
        return torch.cat([mu, s, self.norm_grad_mu(grad_mu), self.norm_grad_s(grad_s)], -1)

    def forward(self, mu: Tensor, s: Tensor, grad_mu: Tensor, grad_s: Tensor, h: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
        """Refined (mu, s) and the new GRU state; all `[N, D]`."""
        h = self.gru(self.mlp(self.inputs(mu, s, grad_mu, grad_s)), h)
        return mu + self.head_mu(h), s + self.head_s(h), h


def _mlp(din: int, dout: int, act: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(nn.Linear(din, _HIDDEN), act(), nn.Linear(_HIDDEN, dout))


class EmorlSegregation(SegregationModule):
    """EfficientMORL's HVAE encoder, hierarchical prior, refinement and decoder (one segregation module).

    `encode` returns the refined top-layer posterior (`mu`, `std`, `z`), its whole KL in `kl`
    (analytic: top layer to N(0, I) plus the reversed-prior KLs of the lower layers) and, in
    training, zero-valued surrogates in `aux_nll` and inside `kl` that give the gradient of
    sum_i w_i (NLL_i + KL_i) over the iterations (the NLL and KL parts apart, so that GECO's beta
    weighs every iteration's KL). `context["iteration_losses"]` `[I+1, B]` holds NLL_i + KL_i. The number of
    refinement steps follows the curriculum on the persistent buffer `training_step`, which counts
    the module's training passes (forward with gradients in train mode), so a checkpoint keeps it;
    a trainer may also set it with `set_training_step(step)`.
    """

    def __init__(self, image_size: int, num_slots: int, latent_dim: int = 64, *, layers: int = 3,
                 refinement_steps: int = 3, refinement_steps_late: int = 1, curriculum_step: int = 100_000,
                 likelihood: str = "gaussian", normalized: bool = False, pixel_std: float = 0.1,
                 feature_dim: int = 64, decoder_width: int = 64) -> None:
        super().__init__()
        self.image_size = image_size
        self.num_slots = num_slots
        self.latent_dim = latent_dim
        self.layers = layers
        self.refinement_steps = refinement_steps
        self.refinement_steps_late = refinement_steps_late
        self.curriculum_step = curriculum_step
        self.likelihood, self.normalized, self.pixel_std = likelihood, normalized, float(pixel_std)
        D, C = latent_dim, feature_dim
        convs: list[nn.Module] = []
        for cin in (3, C, C, C):
            convs += [nn.Conv2d(cin, C, 5, padding=2), nn.ReLU(inplace=True)]
        self.cnn = nn.Sequential(*convs)
        self.pos_embed = nn.Linear(4, C)
        self.register_buffer("pos", border_distances(image_size).flatten(2).transpose(1, 2), persistent=False)
        self.feature_mlp = nn.Sequential(nn.LayerNorm(C), nn.Linear(C, C), nn.ReLU(inplace=True), nn.Linear(C, C))
        # slot attention (one step per stochastic layer; weights shared by the layers: our choice)
        self.norm_inputs = nn.LayerNorm(C)
        self.to_k = nn.Linear(C, D, bias=False)
        self.to_v = nn.Linear(C, D, bias=False)
        self.norm_query = nn.LayerNorm(D)
        self.to_q = nn.Linear(D, D, bias=False)
        self.gru_mu = nn.GRUCell(D, D)
        self.gru_s = nn.GRUCell(D, D)
        self.norm_mu, self.norm_s = nn.LayerNorm(D), nn.LayerNorm(D)
        self.mlp_mu, self.mlp_s = _mlp(D, D, nn.ReLU), _mlp(D, D, nn.ReLU)
        # learned initial posterior shared by all slots
        self.init_mu = nn.Parameter(torch.zeros(D))
        self.init_s = nn.Parameter(torch.zeros(D))
        # reversed prior: p(z^L) = N(0, I); p(z^l | z^(l+1)) for l = L-1..1, one MLP each
        self.prior_nets = nn.ModuleList(_mlp(D, 2 * D, nn.ELU) for _ in range(layers - 1))
        self.refinement = RefinementNetwork(D)
        self.decoder = EmorlDecoder(image_size, D, width=decoder_width)
        self.register_buffer("training_step", torch.zeros((), dtype=torch.long))

    # ---- curriculum --------------------------------------------------------------------------
    def set_training_step(self, step: int) -> None:
        """Set the training step the curriculum reads (also restored from a checkpoint)."""
        self.training_step.fill_(int(step))

    def current_refinement_steps(self) -> int:
        """I at the current training step: `refinement_steps`, then `refinement_steps_late` from `curriculum_step`."""
        if self.curriculum_step and int(self.training_step) >= self.curriculum_step:
            return self.refinement_steps_late
        return self.refinement_steps

    def make_decoder(self) -> EmorlDecoder:
        """A fresh decoder of this module's architecture (SRI's second decoder)."""
        return EmorlDecoder(self.image_size, self.latent_dim)

    # ---- HVAE --------------------------------------------------------------------------------
    def features(self, x: Tensor) -> Tensor:
        """Pixel features `[B, HW, C]`: CNN + embedded position map, then the MLP."""
        h = self.cnn(x).flatten(2).transpose(1, 2)
        return self.feature_mlp(h + self.pos_embed(self.pos.to(h.dtype)))

    def attend(self, k: Tensor, v: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """One slot-attention step: (updates `[B, K, D]`, attention `[B, K, HW]` normalised over slots)."""
        q = self.to_q(self.norm_query(z)) * self.latent_dim ** -0.5
        attn = torch.softmax(torch.einsum("bkd,bnd->bkn", q, k), dim=1)  # over slots
        weights = (attn + 1e-8) / (attn + 1e-8).sum(-1, keepdim=True)  # renormalised over pixels
        return torch.einsum("bkn,bnd->bkd", weights, v), attn

    def hvae(self, x: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor], Tensor]:
        """Bottom-up inference: per layer l = 1..L the posterior (mu, s) and sample; last attention."""
        B, K, D = x.shape[0], self.num_slots, self.latent_dim
        inputs = self.norm_inputs(self.features(x))
        k, v = self.to_k(inputs), self.to_v(inputs)
        mu = self.init_mu.expand(B, K, D)
        s = self.init_s.expand(B, K, D)
        z = mu + softplus_std(s) * torch.randn_like(mu)
        mus, ss, zs = [], [], []
        for _ in range(self.layers):
            u, attn = self.attend(k, v, z)
            u = u.reshape(B * K, D)
            mu = self.gru_mu(u, mu.reshape(B * K, D))
            mu = (mu + self.mlp_mu(self.norm_mu(mu))).view(B, K, D)
            s = self.gru_s(u, s.reshape(B * K, D))
            s = (s + self.mlp_s(self.norm_s(s))).view(B, K, D)
            z = mu + softplus_std(s) * torch.randn_like(mu)
            mus.append(mu), ss.append(s), zs.append(z)
        return mus, ss, zs, attn

    def layer_kl(self, l: int, mu: Tensor, s: Tensor, z_above: Tensor) -> Tensor:
        """KL(q(z^l) || p(z^l | z^(l+1))) summed over slots and dims `[B]` (l is 0-based, l < L-1)."""
        p_mu, p_s = self.prior_nets[l](z_above).float().chunk(2, dim=-1)
        return kl_normal(mu, softplus_std(s), p_mu, softplus_std(p_s)).sum(1)

    # ---- loss of one posterior of the top layer ----------------------------------------------
    def _decode_loss(self, x: Tensor, mu: Tensor, s: Tensor, below: tuple[Tensor, Tensor] | None
                     ) -> dict[str, Tensor]:
        std = softplus_std(s)
        z = mu + std * torch.randn_like(std)
        rgb, logm = self.decoder.decode_slots(z)
        nll = image_nll(x.float(), logm, rgb.float(), self.pixel_std, self.likelihood, self.normalized)
        kl = kl_std_normal(mu, std).sum(1)
        if below is not None:  # the next layer down's KL depends on this layer's sample
            kl = kl + self.layer_kl(self.layers - 2, below[0], below[1], z)
        return {"mu": mu, "s": s, "std": std, "z": z, "rgb": rgb, "logm": logm, "nll": nll, "kl": kl}

    def refinement_inputs(self, x: Tensor, mu: Tensor, s: Tensor, below: tuple[Tensor, Tensor] | None
                          ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Loss of the posterior (mu, s) and its gradients dL/dmu, dL/ds (L = sum over the batch of NLL + KL).

        The gradients enter the refinement network as data (no second-order terms: our choice, as
        IODINE-style refinement does); they are computed also under `torch.no_grad` (evaluation).
        """
        if torch.is_inference_mode_enabled():
            raise RuntimeError("EMORL's refinement needs the gradients of its loss: evaluate under "
                               "torch.no_grad() instead of torch.inference_mode()")
        keep = torch.is_grad_enabled()
        with torch.enable_grad():
            mu_g = mu if mu.requires_grad else mu.detach().requires_grad_()
            s_g = s if s.requires_grad else s.detach().requires_grad_()
            out = self._decode_loss(x, mu_g, s_g, below)
            g_mu, g_s = torch.autograd.grad((out["nll"] + out["kl"]).sum(), (mu_g, s_g), retain_graph=keep)
        if not keep:
            out = {k: v.detach() for k, v in out.items()}
        return out, g_mu.detach(), g_s.detach()

    # ---- the segregation-module interface ----------------------------------------------------
    def encode(self, x: Tensor) -> Segregation:
        """HVAE posterior, I refinement steps of the top layer, the final decoding and the KLs."""
        training = self.training and torch.is_grad_enabled()
        I = self.current_refinement_steps()
        if training:
            self.training_step += 1
        B, K, D = x.shape[0], self.num_slots, self.latent_dim
        mus, ss, zs, attn = self.hvae(x)
        lower_kl = x.new_zeros(B)
        for l in range(self.layers - 2):  # layers below the second-from-top: fixed during refinement
            lower_kl = lower_kl + self.layer_kl(l, mus[l], ss[l], zs[l + 1])
        below = (mus[-2], ss[-2]) if self.layers > 1 else None
        mu, s = mus[-1], ss[-1]
        h = x.new_zeros(B * K, D)
        weights = iteration_weights(I)
        aux_nll, aux_kl = x.new_zeros(B), x.new_zeros(B)
        losses = []
        for i in range(I):
            out, g_mu, g_s = self.refinement_inputs(x, mu, s, below)
            losses.append(out["nll"] + out["kl"] + lower_kl)
            aux_nll = aux_nll + weights[i] * out["nll"]
            aux_kl = aux_kl + weights[i] * (out["kl"] + lower_kl)
            mu_f, s_f, h = self.refinement(mu.reshape(B * K, D), s.reshape(B * K, D),
                                           g_mu.reshape(B * K, D), g_s.reshape(B * K, D), h)
            mu, s = mu_f.view(B, K, D), s_f.view(B, K, D)
        final = self._decode_loss(x, mu, s, below)
        kl = final["kl"] + lower_kl
        losses.append(final["nll"] + kl)
        if training:
            # The assembly uses its own NLL of the final decoding and this module's `kl`, each with
            # weight 1; zero-valued surrogates add the rest of sum_i w_i NLL_i and sum_i w_i KL_i,
            # so the values stay those of the final posterior (what GECO constrains and logs).
            aux_nll = aux_nll + (weights[I] - 1.0) * final["nll"]
            aux_kl = aux_kl + (weights[I] - 1.0) * kl
            kl = kl + (aux_kl - aux_kl.detach())
        H, W = x.shape[-2:]
        return Segregation(att_log_masks=torch.log(attn.clamp_min(1e-12)).view(B, K, 1, H, W),
                           mu=mu, std=final["std"], z=final["z"], kl=kl,
                           aux_nll=aux_nll - aux_nll.detach() if training else None,
                           context={"rgb": final["rgb"], "log_masks": final["logm"],
                                    "iteration_losses": torch.stack([l.detach() for l in losses])})

    def reconstruct(self, x: Tensor, seg: Segregation) -> tuple[Tensor, Tensor]:
        """The decoding of the final posterior sample (computed in `encode`)."""
        return seg.context["rgb"], seg.context["log_masks"]


