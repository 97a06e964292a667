"""DeepInverse interoperability: our priors and MRI operators on deepinv's side, deepinv's MRI physics on ours.

Three adapters, each a thin, differentiable change of conventions (no copies of deepinv code):

- :class:`PriorDenoiser`: a diffusion prior (ε-network + noise schedule, see :mod:`..priors.base`) as a
  ``deepinv.models.Denoiser``: ``D(x, σ) = E[x_0 | x]`` via Tweedie's formula, usable wherever deepinv expects a
  Gaussian denoiser (plug-and-play, ``deepinv.sampling.DiffPIR`` (Zhu et al., 2023), ...).
- :class:`OperatorPhysics`: an operator of ours (:class:`~..operators.base.LinearOperator`, e.g.
  :class:`~..operators.fourier.MaskedFourier`, :class:`~..operators.sense.SenseOperator`) as a
  ``deepinv.physics.LinearPhysics`` in deepinv's MRI tensor layout.
- :class:`DeepinvOperator`: deepinv's ``MRI`` (single coil) or ``MultiCoilMRI`` as one of our operators.

Tensor conventions
------------------
Ours: images ``(B, 1, H, W)`` complex; k-space ``(B, C, H, W)`` complex; masks real ``(B|1, 1, H|1, W)``.

deepinv 0.5 (``deepinv.physics.MRI`` / ``MultiCoilMRI``): complex data are real tensors with a real/imaginary channel
axis at dim 1. Images ``(B, 2, H, W)``; single-coil k-space ``(B, 2, H, W)``; multi-coil k-space ``(B, 2, N, H, W)``
(coil axis *after* the real/imag axis); masks are stored as ``(B|1, 2, H, W)`` (the real mask duplicated over the
real/imag axis); coil maps ``(B|1, N, H, W)`` complex. deepinv's ``MRIMixin.fft`` is
``fftshift ∘ fftn(norm="ortho") ∘ ifftshift`` over the last two axes, i.e. exactly our centred orthonormal
:func:`~..operators.fft.fft2c` (DC at ``(H // 2, W // 2)``), so no rescaling or shifting is needed between the two.

Pitfalls of deepinv 0.5 worth knowing: ``MRIMixin.check_mask`` left-pads a mask to 4 dimensions and duplicates dim 1
only when it has size 1, so a batch of masks given as ``(B, H, W)`` with ``B = 2`` is silently read as one mask's
real/imag channels (pass ``(B, 1, H, W)``); ``MRI.prox_l2`` (``DecomposablePhysics``) broadcasts a per-item ``gamma`` only when
shaped ``(B, 1, 1, 1)``, not ``(B,)``; ``MRI``'s mask attribute keeps a column mask as ``(B, 2, 1, W)``, so its
``img_size`` is then ``(2, 1, W)``; its measurement noise is multiplied by the mask.

References:
    J. Tachella et al., "DeepInverse: a Python package for solving imaging inverse problems with deep learning",
    2025 (https://deepinv.github.io).

    Y. Zhu, K. Zhang, J. Liang, J. Cao, B. Wen, R. Timofte, L. Van Gool, "Denoising Diffusion Models for
    Plug-and-Play Image Restoration" (DiffPIR), CVPR Workshops 2023: a pretrained diffusion model used as a Gaussian
    denoiser inside a plug-and-play sampler, the usage :class:`PriorDenoiser` enables.
"""

from __future__ import annotations

import math

import torch

try:
    import deepinv as _dinv
    from deepinv.models import Denoiser as _Denoiser
    from deepinv.physics import MRI as _MRI
    from deepinv.physics import LinearPhysics as _LinearPhysics
    from deepinv.physics import MultiCoilMRI as _MultiCoilMRI
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "monai_ddpm_recon.interop.deepinv needs deepinv>=0.5: pip install 'monai-ddpm-recon[deepinv]'."
    ) from err

from ..operators.fft import fft2c, ifft2c
from ..operators.fourier import MaskedFourier
from ..priors.base import prior_supports_size
from ..solvers.diffusion import check_prior
from ..solvers.vp_ve import sigma_to_timestep, ve_sigmas
from ..utils.validation import check_complex, check_finite, check_shape

__all__ = ["PriorDenoiser", "OperatorPhysics", "DeepinvOperator"]

_OPERATOR_MEMBERS = ("forward", "adjoint", "normal", "image_shape", "num_coils", "mask")
_MAPPINGS = ("affine", "identity")


# --- layout helpers ---------------------------------------------------------------------------------------------------
def _to_channels(z: torch.Tensor) -> torch.Tensor:
    """Complex ``(B, ...)`` → real ``(B, 2, ...)`` (real, imaginary at dim 1); differentiable."""
    return torch.stack((z.real, z.imag), dim=1)


def _from_channels(x: torch.Tensor) -> torch.Tensor:
    """Real ``(B, 2, ...)`` → complex ``(B, ...)``; complex64 from float32, complex128 from float64; differentiable."""
    return torch.complex(x[:, 0], x[:, 1])


def _check_real(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    if torch.is_complex(x) or not x.is_floating_point():
        raise TypeError(
            f"{name} must be a real floating tensor (deepinv stores complex data as 2 real channels), got {x.dtype}."
        )
    return x


# --- denoiser ---------------------------------------------------------------------------------------------------------
class PriorDenoiser(_Denoiser):
    r"""A diffusion prior as a deepinv Gaussian denoiser (the MMSE / Tweedie estimate at the matching timestep).

    deepinv denoisers see images in ``[0, 1]`` and additive white Gaussian noise of standard deviation ``σ`` in those
    units: ``x = x_clean + σ z``. A DDPM prior models ``x_0`` in ``[-1, 1]`` through
    ``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε``, i.e. the variance-exploding point ``x_t / sqrt(ᾱ_t) = x_0 + σ_t z`` with
    ``σ_t = sqrt(1/ᾱ_t - 1)``. :meth:`forward`

    1. maps to the prior's range, ``v = 2x - 1`` (``mapping="affine"``), so the noise std becomes ``σ_VE = 2σ``;
    2. picks the timestep ``t`` whose ``σ_t`` is nearest to ``σ_VE`` in log σ
       (:func:`~..solvers.vp_ve.sigma_to_timestep`);
    3. forms the VP point ``x_t = sqrt(ᾱ_t) v`` and returns the Tweedie estimate ``(prior.x0(x_t, t) + 1) / 2``.

    When ``2σ`` is exactly some ``σ_t`` and the ε-network is exact (e.g. :class:`~..priors.gaussian.GaussianPrior`) this
    is the posterior mean ``E[x_clean | x]``. Otherwise the estimate is that of the nearest noise level of the prior's
    grid (``σ`` outside ``[σ_0, σ_{T-1}] / 2`` snaps to the end of the grid), and ``σ = 0`` returns the input unchanged.
    The output is not clipped. The timestep is chosen on the prior's own schedule, so samplers with a different
    built-in schedule (deepinv's ``DiffPIR`` assumes the linear 1e-4..2e-2, T = 1000 one) still get the right noise
    level.

    **2-channel priors** (``prior.channels == 2``: real and imaginary parts of a complex image, the layout of deepinv's
    MRI images ``(B, 2, H, W)``). Two intensity mappings are offered:

    - ``mapping="affine"`` (default): ``v = 2x - 1`` on *both* channels, as for 1-channel priors. This is what deepinv's
      diffusion samplers assume (e.g. ``DiffPIR`` renormalises every channel with ``x/2 + 1/2`` before calling the
      denoiser and ``2D - 1`` after), so use it to plug the prior into those algorithms. The prior's complex image is
      then ``v = 2 (x - (1 + i)/2)``: deepinv's image carries a constant offset ``(1 + i)/2`` (a DC term in k-space).
    - ``mapping="identity"``: ``v = x``, ``σ_VE = σ`` and the output is ``prior.x0(x_t, t)`` itself: deepinv's image is
      directly the prior's complex image ``[Re, Im] / scale`` (this package's convention for 2-channel priors, see
      :mod:`~..solvers.mapping`), with real and imaginary parts in ``[-1, 1]``. Use it when you call the denoiser
      yourself on complex MRI images.

    Args:
        prior: a diffusion prior following the protocol of :mod:`~..priors.base` (members ``x0``, ``alphas_cumprod``
            (float64 ``(T,)``), ``channels`` (1 or 2), ``image_size``, ``num_train_timesteps``), e.g.
            :class:`~..priors.ddpm.DDPMPrior` or :class:`~..priors.gaussian.GaussianPrior`.
        mapping: ``"affine"`` (``v = 2x - 1``) or ``"identity"`` (``v = x``), see above.

    Raises:
        TypeError: ``prior`` lacks a protocol member.
        ValueError: ``prior.channels`` is not 1 or 2, or ``mapping`` is unknown.

    Example:
        >>> denoiser = PriorDenoiser(GaussianPrior((32, 32)))          # doctest: +SKIP
        >>> x_hat = denoiser(x_noisy, sigma=0.05)   # (B, 1, 32, 32) in [0, 1] units   # doctest: +SKIP

    References:
        J. Tachella et al., "DeepInverse: a Python package for solving imaging inverse problems with deep learning",
        2025.

        Y. Zhu et al., "Denoising Diffusion Models for Plug-and-Play Image Restoration" (DiffPIR), CVPR Workshops 2023.
    """

    def __init__(self, prior, mapping: str = "affine") -> None:
        super().__init__()
        check_prior(prior)  # the one Prior protocol, 1 or 2 channels
        if mapping not in _MAPPINGS:
            raise ValueError(f"mapping must be one of {_MAPPINGS}, got {mapping!r}.")
        self.prior = prior
        self.mapping = mapping
        network = getattr(prior, "network", None)
        if isinstance(network, torch.nn.Module) and not isinstance(prior, torch.nn.Module):
            # registered so that .to(), .eval() and .parameters() of the denoiser reach the prior's network
            self.network = network

    # --- noise levels ------------------------------------------------------------------------------------------------
    @property
    def scale(self) -> float:
        """Factor from deepinv's intensity units to the prior's: 2 (``affine``) or 1 (``identity``)."""
        return 2.0 if self.mapping == "affine" else 1.0

    def timestep(self, sigma: float) -> int:
        """Prior timestep used for a deepinv noise level ``σ > 0`` (nearest ``σ_t`` to ``scale·σ`` in log σ)."""
        return int(sigma_to_timestep(self.prior, self.scale * float(sigma)))

    def sigma_of_timestep(self, t: int) -> float:
        """The deepinv noise level ``σ_t / scale`` that maps exactly to timestep ``t`` (``σ_t = sqrt(1/ᾱ_t - 1)``)."""
        if not 0 <= int(t) < int(self.prior.num_train_timesteps):
            raise ValueError(f"t must lie in [0, {int(self.prior.num_train_timesteps) - 1}], got {t!r}.")
        return float(ve_sigmas(self.prior.alphas_cumprod)[int(t)]) / self.scale

    def _sigmas(self, sigma, batch: int) -> list[float]:
        if isinstance(sigma, torch.Tensor):
            s = sigma.detach().to("cpu", torch.float64).reshape(-1)
        else:
            try:
                s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
            except (TypeError, ValueError, RuntimeError) as err:
                raise TypeError(f"sigma must be a float or a (B,) tensor, got {type(sigma).__name__}.") from err
        if s.numel() == 1:
            s = s.expand(batch)
        if s.numel() != batch:
            raise ValueError(f"sigma must be a scalar or have {batch} entries (one per image), got {s.numel()}.")
        if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
            raise ValueError(f"sigma must be finite and >= 0, got {s.tolist()}.")
        return [float(v) for v in s]

    def _check_image(self, x) -> torch.Tensor:
        _check_real("x", x)
        expected = (self.prior.channels, *(int(s) for s in self.prior.image_size))
        if x.ndim != 4 or x.shape[1] != expected[0] or not prior_supports_size(self.prior, tuple(x.shape[-2:])):
            raise ValueError(
                f"x has shape {tuple(x.shape)}; this prior expects (B, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"({'real, imaginary' if expected[0] == 2 else 'one real channel'})."
            )
        return x

    # --- denoising ---------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor, **kwargs) -> torch.Tensor:
        """Denoise ``x`` (deepinv units) at noise level ``sigma``.

        Args:
            x: noisy images ``(B, channels, H, W)`` real (float32 or float64) with ``(H, W) = prior.image_size``,
                in deepinv's ``[0, 1]`` units (``affine``) or the prior's units (``identity``), up to the noise.
            sigma: noise standard deviation in the same units: a float, or a tensor/list with 1 or ``B`` entries
                (items may map to different timesteps; the prior is called once per distinct timestep).
            **kwargs: ignored (deepinv passes model-specific options to some denoisers).

        Returns:
            Tweedie estimate of the clean image, same shape, dtype and device as ``x``, not clipped; differentiable
            with respect to ``x``.

        Raises:
            TypeError: ``x`` is not a real floating tensor.
            ValueError: ``x`` has the wrong shape, or ``sigma`` is negative, not finite or has the wrong length.
        """
        x = self._check_image(x)
        sigmas = self._sigmas(sigma, x.shape[0])
        ts = [self.timestep(s) if s > 0 else -1 for s in sigmas]
        v = 2.0 * x - 1.0 if self.mapping == "affine" else x
        abar = self.prior.alphas_cumprod
        groups: dict[int, list[int]] = {}
        for i, t in enumerate(ts):
            groups.setdefault(t, []).append(i)
        pieces, order = [], []
        for t, idx in groups.items():
            vi = v if len(groups) == 1 else v[idx]
            if t < 0:
                pieces.append(vi)
            else:
                a = float(abar[t])
                pieces.append(self.prior.x0(math.sqrt(a) * vi, t).to(dtype=x.dtype, device=x.device))
            order.extend(idx)
        if len(groups) == 1:
            x0 = pieces[0]
        else:
            inverse = torch.argsort(torch.as_tensor(order, device=x.device))
            x0 = torch.cat(pieces, dim=0)[inverse]
        return (x0 + 1.0) / 2.0 if self.mapping == "affine" else x0

    def extra_repr(self) -> str:
        return (
            f"prior={type(self.prior).__name__}(channels={self.prior.channels}, "
            f"image_size={tuple(self.prior.image_size)}, T={self.prior.num_train_timesteps}), mapping={self.mapping!r}"
        )


# --- our operator as deepinv physics ----------------------------------------------------------------------------------
class OperatorPhysics(_LinearPhysics):
    r"""One of our MRI operators as a ``deepinv.physics.LinearPhysics`` in deepinv's MRI tensor layout.

    Layouts (real tensors, real/imaginary parts at dim 1, as ``deepinv.physics.MRI`` / ``MultiCoilMRI``):

    - image ``x``: ``(B, 2, H, W)`` float32/float64 ↔ our ``(B, 1, H, W)`` complex64/complex128;
    - k-space, single-coil layout (``multicoil=False``, like ``MRI``): ``(B, 2, H, W)`` ↔ our ``(B, 1, H, W)``;
    - k-space, multi-coil layout (``multicoil=True``, like ``MultiCoilMRI``): ``(B, 2, C, H, W)`` ↔ our
      ``(B, C, H, W)``.

    ``A``, ``A_adjoint`` and ``A_adjoint_A`` call the operator's ``forward``, ``adjoint`` and ``normal``, so the FFT
    convention is the operator's (ours and deepinv's agree: centred orthonormal). With our
    :class:`~..operators.fourier.MaskedFourier` / :class:`~..operators.sense.SenseOperator` the results equal deepinv's
    ``MRI(mask)`` / ``MultiCoilMRI(mask, coil_maps)`` to float precision (tested). Like deepinv's MRI physics,
    :meth:`noise` multiplies the noisy measurements by the mask (no noise at unsampled locations).

    The operator is fixed: passing ``mask=`` or ``coil_maps=`` to ``A``/``A_adjoint``/``physics(x)`` (deepinv's
    on-the-fly update) raises; build a new operator and wrapper instead. Everything is differentiable.
    ``prox_l2`` and ``A_dagger`` are closed-form for :class:`~..operators.fourier.MaskedFourier` (as deepinv's ``MRI``)
    and use deepinv's generic least-squares solvers (conjugate gradients) for other operators.

    Args:
        operator: an operator following :class:`~..operators.base.LinearOperator` (``forward``, ``adjoint``,
            ``normal``, ``image_shape``, ``num_coils``, ``mask``).
        multicoil: k-space layout; ``None`` (default) picks the multi-coil layout when ``operator.num_coils > 1`` or
            the operator has coil maps (``sens_maps``, e.g. a 1-coil ``SenseOperator``), the single-coil one otherwise.
        **kwargs: passed to ``deepinv.physics.LinearPhysics`` (e.g. ``noise_model=deepinv.physics.GaussianNoise(0.01)``,
            ``max_iter``, ``tol``, ``solver``).

    Raises:
        TypeError: ``operator`` lacks a member of the operator protocol.
        ValueError: ``multicoil=False`` with more than one coil.

    References:
        J. Tachella et al., "DeepInverse: a Python package for solving imaging inverse problems with deep learning",
        2025.
    """

    def __init__(self, operator, multicoil: bool | None = None, **kwargs) -> None:
        missing = [m for m in _OPERATOR_MEMBERS if not hasattr(operator, m)]
        if missing:
            raise TypeError(
                f"operator must follow the LinearOperator protocol (members {', '.join(_OPERATOR_MEMBERS)}); "
                f"{type(operator).__name__} lacks {', '.join(missing)}."
            )
        coils = int(operator.num_coils)
        if multicoil is None:
            multicoil = coils > 1 or hasattr(operator, "sens_maps")
        if not multicoil and coils != 1:
            raise ValueError(f"multicoil=False needs a single-coil operator; operator has num_coils={coils}.")
        h, w = (int(s) for s in operator.image_shape)
        kwargs.setdefault("img_size", (2, h, w))
        super().__init__(**kwargs)
        self.operator = operator
        self.multicoil = bool(multicoil)
        self._image_shape = (h, w)

    # --- layout ------------------------------------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return self._image_shape

    @property
    def num_coils(self) -> int:
        """Number of coils ``C`` of the wrapped operator."""
        return int(self.operator.num_coils)

    def measurement_shape(self, batch: int = 1) -> tuple[int, ...]:
        """Shape of deepinv k-space: ``(B, 2, C, H, W)`` (multi-coil layout) or ``(B, 2, H, W)``."""
        h, w = self._image_shape
        return (batch, 2, self.num_coils, h, w) if self.multicoil else (batch, 2, h, w)

    def _image_in(self, x) -> torch.Tensor:
        _check_real("x", x)
        check_shape("x", x, (None, 2, *self._image_shape))
        return _from_channels(x)[:, None]

    def _kspace_in(self, y) -> torch.Tensor:
        _check_real("y", y)
        check_shape("y", y, (None, *self.measurement_shape()[1:]))
        z = _from_channels(y)
        return z if self.multicoil else z[:, None]

    def _kspace_out(self, k: torch.Tensor) -> torch.Tensor:
        return _to_channels(k if self.multicoil else k[:, 0])

    @staticmethod
    def _reject_updates(kwargs: dict) -> None:
        for key in ("mask", "coil_maps"):
            if kwargs.get(key) is not None:
                raise ValueError(
                    f"OperatorPhysics wraps a fixed operator and cannot update {key!r} on the fly; build a new "
                    "operator and wrap it."
                )

    # --- maps --------------------------------------------------------------------------------------------------------
    def A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """``y = A x``: ``x`` ``(B, 2, H, W)`` real → k-space ``(B, 2, C, H, W)`` or ``(B, 2, H, W)`` real."""
        self._reject_updates(kwargs)
        return self._kspace_out(self.operator.forward(self._image_in(x)))

    def A_adjoint(self, y: torch.Tensor, **kwargs) -> torch.Tensor:
        """``x = Aᴴ y``: k-space in this physics' layout → ``(B, 2, H, W)`` real."""
        self._reject_updates(kwargs)
        return _to_channels(self.operator.adjoint(self._kspace_in(y))[:, 0])

    def A_adjoint_A(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """``Aᴴ A x`` through the operator's ``normal``; ``(B, 2, H, W)`` → ``(B, 2, H, W)``."""
        self._reject_updates(kwargs)
        return _to_channels(self.operator.normal(self._image_in(x))[:, 0])

    def prox_l2(self, z, y: torch.Tensor, gamma, *args, **kwargs) -> torch.Tensor:
        r"""``argmin_x γ/2 ‖A x - y‖² + 1/2 ‖x - z‖²``, ``(B, 2, H, W)``.

        Closed form for single-coil Cartesian operators (:class:`~..operators.fourier.MaskedFourier`, ``A = M F``):
        ``x = Fᴴ [(F z + γ M y) / (1 + γ M²)]``, as deepinv's ``MRI``; otherwise deepinv's iterative solver
        (``LinearPhysics.prox_l2``, conjugate gradients by default; ``*args``/``**kwargs`` are passed to it).
        ``gamma`` is a float or a tensor with 1 or ``B`` entries; ``z`` a tensor, a number or ``None`` (zero).
        """
        if not isinstance(self.operator, MaskedFourier):
            return super().prox_l2(z, y, gamma, *args, **kwargs)
        self._reject_updates(kwargs)
        k = self._kspace_in(y)
        m = self.operator.mask.to(device=y.device, dtype=y.dtype)
        g = torch.as_tensor(gamma, device=y.device, dtype=y.dtype)
        g = g.reshape(-1, 1, 1, 1) if g.ndim else g
        rhs = g * m * k
        if isinstance(z, torch.Tensor):
            rhs = rhs + fft2c(self._image_in(z))
        elif z is not None and float(z) != 0.0:
            rhs = rhs + fft2c(torch.full_like(k, complex(float(z), float(z))))
        return _to_channels(ifft2c(rhs / (1 + g * m * m))[:, 0])

    def A_dagger(self, y: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """Pseudo-inverse ``A⁺ y``: closed form ``Fᴴ (M⁺ y)`` for :class:`~..operators.fourier.MaskedFourier`, deepinv's
        least-squares solver otherwise. Returns ``(B, 2, H, W)``."""
        if not isinstance(self.operator, MaskedFourier):
            return super().A_dagger(y, *args, **kwargs)
        self._reject_updates(kwargs)
        k = self._kspace_in(y)
        m = self.operator.mask.to(device=y.device, dtype=y.dtype)
        inv = torch.where(m > 0, 1.0 / m.clamp_min(torch.finfo(m.dtype).tiny), torch.zeros_like(m))
        return _to_channels(ifft2c(inv * k)[:, 0])

    def noise(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        """Noisy measurements ``M ⊙ N(y)`` (deepinv's noise model, then the mask, as deepinv's MRI physics)."""
        m = self.operator.mask.to(device=x.device, dtype=x.dtype)  # (B|1, 1, H|1, W): broadcasts over dim 1 = re/im
        if self.multicoil:
            m = m[:, :, None]  # (B|1, 1, 1, H|1, W) over (B, 2, C, H, W)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("mask", "coil_maps")}
        return m * self.noise_model(x, **kwargs)

    def extra_repr(self) -> str:
        return f"operator={self.operator!r}, multicoil={self.multicoil}"


# --- deepinv physics as our operator ----------------------------------------------------------------------------------
class DeepinvOperator:
    r"""deepinv's 2D ``MRI`` (single coil) or ``MultiCoilMRI`` physics as one of our operators.

    Follows :class:`~..operators.base.LinearOperator`: image ``x`` ``(B, 1, H, W)`` complex64/complex128, k-space
    ``(B, C, H, W)`` complex of the same dtype (``C = 1`` for ``MRI``, the number of coil maps for ``MultiCoilMRI``);
    :attr:`mask` is real ``(B|1, 1, H|1, W)`` (the first of deepinv's duplicated real/imaginary mask channels). Calls
    go through the physics' ``A``, ``A_adjoint`` and ``A_adjoint_A`` with its current mask and coil maps (no
    on-the-fly updates, so the physics is never modified); noise models of the physics are not applied.

    Args:
        physics: ``deepinv.physics.MRI`` or ``deepinv.physics.MultiCoilMRI`` with ``three_d=False`` (dynamic and
            sequential MRI are not supported).
        image_shape: ``(H, W)``; inferred from the coil maps (multi-coil) or from the mask. Required when neither gives
            it (a single-coil column mask stored as ``(B, 2, 1, W)``).

    Raises:
        TypeError: ``physics`` is not a 2D static ``MRI`` / ``MultiCoilMRI``.
        ValueError: 3D physics, or a mask/coil-map shape that does not match ``image_shape``.

    References:
        J. Tachella et al., "DeepInverse: a Python package for solving imaging inverse problems with deep learning",
        2025.
    """

    def __init__(self, physics, image_shape: tuple[int, int] | None = None) -> None:
        dynamic = tuple(
            cls for name in ("DynamicMRI", "SequentialMRI") if (cls := getattr(_dinv.physics, name, None)) is not None
        )
        if not isinstance(physics, (_MRI, _MultiCoilMRI)) or (dynamic and isinstance(physics, dynamic)):
            raise TypeError(
                "physics must be a deepinv.physics.MRI or deepinv.physics.MultiCoilMRI (2D, static), got "
                f"{type(physics).__name__}."
            )
        if getattr(physics, "three_d", False):
            raise ValueError("physics has three_d=True; DeepinvOperator supports 2D MRI only.")
        self.physics = physics
        self._multicoil = isinstance(physics, _MultiCoilMRI)
        mask = physics.mask
        if mask.ndim != 4:
            raise ValueError(f"physics.mask has shape {tuple(mask.shape)}; expected (B, 2, H, W) for 2D MRI.")
        if self._multicoil:
            maps = physics.coil_maps
            if maps.ndim != 4:
                raise ValueError(f"physics.coil_maps has shape {tuple(maps.shape)}; expected (B, N, H, W) for 2D MRI.")
            inferred = (int(maps.shape[-2]), int(maps.shape[-1]))
        else:
            inferred = (int(mask.shape[-2]), int(mask.shape[-1]))
        if image_shape is None:
            if not self._multicoil and mask.shape[-2] == 1:
                raise ValueError(
                    f"physics.mask has shape {tuple(mask.shape)} (a column mask); pass image_shape=(H, W)."
                )
            image_shape = inferred
        self._image_shape = (int(image_shape[0]), int(image_shape[1]))
        h, w = self._image_shape
        if self._multicoil and inferred != self._image_shape:
            raise ValueError(f"physics.coil_maps have image size {inferred}, but image_shape is {self._image_shape}.")
        if mask.shape[-1] != w or mask.shape[-2] not in (1, h):
            raise ValueError(
                f"physics.mask has shape {tuple(mask.shape)}, which does not match image_shape {self._image_shape}: "
                f"expected (B|1, 2, 1, {w}) or (B|1, 2, {h}, {w})."
            )

    # --- protocol properties -----------------------------------------------------------------------------------------
    @property
    def mask(self) -> torch.Tensor:
        """Sampling mask, real ``(B|1, 1, H|1, W)`` (a view of the physics' mask, first re/im channel)."""
        m = self.physics.mask[:, :1]
        return m.real if torch.is_complex(m) else m

    @property
    def image_shape(self) -> tuple[int, int]:
        return self._image_shape

    @property
    def num_coils(self) -> int:
        return int(self.physics.coil_maps.shape[1]) if self._multicoil else 1

    def to(self, device: torch.device | str) -> DeepinvOperator:
        """Move the wrapped physics (in place, as ``torch.nn.Module.to``) and return a wrapper of it."""
        return DeepinvOperator(self.physics.to(device), self._image_shape)

    # --- maps --------------------------------------------------------------------------------------------------------
    def _check(self, name: str, t: torch.Tensor, channels: int) -> None:
        check_complex(name, t)
        check_shape(name, t, (None, channels, *self._image_shape))

    def _image_in(self, x: torch.Tensor) -> torch.Tensor:
        self._check("image", x, 1)
        return _to_channels(x[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y = A x``; ``x`` ``(B, 1, H, W)`` complex → ``(B, C, H, W)`` complex (same dtype)."""
        y = _from_channels(self.physics.A(self._image_in(x)))
        return (y if self._multicoil else y[:, None]).to(x.dtype)

    __call__ = forward

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``x = Aᴴ y``; ``y`` ``(B, C, H, W)`` complex → ``(B, 1, H, W)`` complex (same dtype)."""
        self._check("kspace", y, self.num_coils)
        check_finite("kspace", y)
        yr = _to_channels(y if self._multicoil else y[:, 0])
        return _from_channels(self.physics.A_adjoint(yr))[:, None].to(y.dtype)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``Aᴴ A x``; ``(B, 1, H, W)`` complex → ``(B, 1, H, W)`` complex."""
        return _from_channels(self.physics.A_adjoint_A(self._image_in(x)))[:, None].to(x.dtype)

    def __repr__(self) -> str:
        return (
            f"DeepinvOperator({type(self.physics).__name__}, num_coils={self.num_coils}, "
            f"image_shape={self._image_shape}, mask_shape={tuple(self.mask.shape)})"
        )

