"""Second derivatives per degeneracy mode, nested transforms, M = 0 and aliasing through torch (issue #9).

References: torch's native eigh autograd (exact 1/Δ, so only where a mode equals it to rounding:
"mask" and "lorentzian" on separated spectra) and central finite differences of eigdiff's own
first-order gradient, which checks that double backward differentiates what the backward computes.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _spectra import matrix_from_spectrum
from torch.func import hessian, jacfwd, jacrev

import eigdiff

MODES = eigdiff.DEGENERACY_MODES


def _separated(M: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """Float64, gaps ≥ 0.5 (relative gap ≥ 0.1 of the spread, so Lorentzian's (ε/Δ)² ~ u)."""
    rng = np.random.default_rng(seed)
    lmd = np.cumsum(0.5 + rng.random(M)) - M / 2 + shift
    return torch.tensor(matrix_from_spectrum(lmd, rng))


def _loss_fn(eigh_fn, M: int, k: int | None, seed: int = 0):
    rng = np.random.default_rng(100 + seed)
    kk = M if k is None else k
    W, c = torch.tensor(rng.standard_normal((M, kk))), torch.tensor(rng.standard_normal(kk))

    def loss(X: torch.Tensor) -> torch.Tensor:
        lmd, Y = eigh_fn(X, k)
        return (W * Y * Y).sum() + (c * lmd * lmd).sum()

    return loss


def _ours(mode: str):
    return lambda X, k: eigdiff.eigh(X, top_k=k, degeneracy=mode)


def _native(X: torch.Tensor, k: int | None):
    lmd, Y = torch.linalg.eigh((X + X.mT) / 2)
    k = X.shape[-1] if k is None else k
    return lmd[..., -k:], Y[..., -k:]


@pytest.mark.parametrize("K", [4, 2])
@pytest.mark.parametrize("mode", MODES)
def test_backward_is_differentiated_exactly(mode: str, K: int) -> None:
    """Autograd through `eigdiff.backward` (what double backward and hessian use) against central
    finite differences of the backward itself, in λ, Y and V separately, float64, h = 1e-6.

    The spectrum has a pair inside the threshold (explicit eps = 0.05, gap 0.03) besides
    separated ones, so each mode's regularized branch is differentiated too; the own-column
    entries, where Lorentzian's dF/dΔ = 1/ε², are where autograd used to cancel. PSD for "taylor".
    """
    rng = np.random.default_rng(11)
    lmd = torch.tensor([1.0, 2.2, 2.23, 3.5], dtype=torch.float64) + (4.0 if mode == "taylor" else -2.0)
    Y = torch.linalg.qr(torch.tensor(rng.standard_normal((4, 4))))[0]
    V, W = torch.tensor(rng.standard_normal((4, K))), torch.tensor(rng.standard_normal((4, 4)))
    f = lambda a, b, c: (eigdiff.backward(a, b, c, degeneracy=mode, eps=0.05) * W).sum()
    inputs = [t.clone().requires_grad_() for t in (lmd, Y, V)]
    grads = torch.autograd.grad(f(*inputs), inputs)
    h = 1e-6
    for i, g in enumerate(grads):
        d = torch.tensor(rng.standard_normal(g.shape))
        plus = [t + h * d if j == i else t for j, t in enumerate((lmd, Y, V))]
        minus = [t - h * d if j == i else t for j, t in enumerate((lmd, Y, V))]
        fd = (f(*plus) - f(*minus)) / (2 * h)
        torch.testing.assert_close((g * d).sum(), fd, rtol=1e-6, atol=1e-8, msg=lambda m, i=i: f"input {i}: {m}")


@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("mode", ["mask", "lorentzian"])
def test_second_derivatives_against_finite_differences_of_the_gradient(mode: str, top_k: int | None) -> None:
    """H·dX by double backward against (∇L(X + h dX) − ∇L(X − h dX)) / 2h, ∇L by eigdiff's backward.

    Float64, h = 1e-5: truncation h²·‖∇³L‖ and rounding u/h, both ≲ 1e-9 of ‖H dX‖ here; the
    tolerance 1e-6 leaves three orders of margin. (Not for "taylor": its first derivative is an
    approximation of the eigenvectors' true one, which the finite differences of eigh see.)
    """
    X = _separated(4, seed=1)
    dX = _separated(4, seed=2)
    loss = _loss_fn(_ours(mode), 4, top_k)

    def gradient(Z: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
        Z = Z.detach().requires_grad_() if not create_graph else Z
        (g,) = torch.autograd.grad(loss(Z), Z, create_graph=create_graph)
        return g

    Xg = X.clone().requires_grad_()
    (Hv,) = torch.autograd.grad((gradient(Xg, create_graph=True) * dX).sum(), Xg)
    h = 1e-5
    Hv_fd = (gradient(X + h * dX) - gradient(X - h * dX)) / (2 * h)
    torch.testing.assert_close(Hv, Hv_fd, rtol=0, atol=1e-6 * Hv_fd.abs().max().item())


@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("mode", ["mask", "lorentzian"])
def test_hessian_matches_native_on_separated_spectra(mode: str, top_k: int | None) -> None:
    """The reported case: Lorentzian's Hessian was 12% off native's on a separated 4 × 4 spectrum."""
    X = _separated(4, seed=3)
    H = hessian(_loss_fn(_ours(mode), 4, top_k))(X)
    H_native = hessian(_loss_fn(_native, 4, top_k))(X)
    torch.testing.assert_close(H, H_native, rtol=0, atol=1e-7 * H_native.abs().max().item())


def _top_eigenvalue(mode: str):
    return lambda Z: eigdiff.eigh(Z, degeneracy=mode)[0][-1] + eigdiff.eigh(Z, degeneracy=mode)[1][0, -1] ** 2


_X2 = torch.tensor([[8.0, 1.0], [1.0, 9.0]], dtype=torch.float64)  # PSD, gap ≈ 2.2


def _nested(f):
    return {
        "rev∘rev": jacrev(jacrev(f))(_X2),
        "fwd∘rev": jacfwd(jacrev(f))(_X2),
        "rev∘fwd": jacrev(jacfwd(f))(_X2),
        "hessian": hessian(f)(_X2),
    }


@pytest.mark.parametrize("mode", ["mask", "lorentzian"])
def test_nested_orders_against_native(mode: str) -> None:
    """rev∘rev, fwd∘rev, rev∘fwd and hessian equal native's (float64, rounding-level tolerance)."""
    f_native = lambda Z: (lambda lmd, Y: lmd[-1] + Y[0, -1] ** 2)(*torch.linalg.eigh((Z + Z.mT) / 2))
    H_native = jacrev(jacrev(f_native))(_X2)
    assert H_native.abs().max() > 0.01
    for name, H in _nested(_top_eigenvalue(mode)).items():
        torch.testing.assert_close(H, H_native, rtol=0, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")


def test_nested_orders_agree_for_taylor() -> None:
    """Taylor's F is not 1/Δ, so its orders are compared with each other (and with FD above)."""
    results = _nested(_top_eigenvalue("taylor"))
    for name, H in results.items():
        torch.testing.assert_close(H, results["rev∘rev"], rtol=0, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("mode", MODES)
def test_forward_over_forward_raises_instead_of_zeros(mode: str) -> None:
    with pytest.raises(NotImplementedError, match="nested forward-mode transforms .* returns zeros"):
        jacfwd(jacfwd(_top_eigenvalue(mode)))(_X2)
    with pytest.raises(NotImplementedError, match="nested forward-mode"):
        torch.func.jvp(lambda Z: torch.func.jvp(_top_eigenvalue(mode), (Z,), (Z,))[1], (_X2,), (_X2,))


def test_empty_matrix_through_autograd() -> None:
    for shape in [(0, 0), (3, 0, 0)]:
        X = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        lmd, Y = eigdiff.eigh(X)
        assert lmd.shape == shape[:-1] and Y.shape == shape
        (lmd.sum() + Y.sum()).backward()
        assert X.grad is not None and X.grad.shape == shape
        Z = torch.zeros(shape, dtype=torch.float64)
        assert jacrev(lambda A: eigdiff.eigh(A)[0].sum())(Z).shape == shape


def test_top_k_outputs_are_compact_and_editing_them_is_caught() -> None:
    X = torch.randn(16, 16, dtype=torch.float64)
    X = (X + X.T).requires_grad_()
    lmd, Y = eigdiff.eigh(X, top_k=2)
    assert Y.untyped_storage().nbytes() == Y.numel() * Y.element_size()
    lmd_full, Y_full = eigdiff.eigh(X)
    loss = (Y_full**2 * torch.arange(16.0, dtype=torch.float64)).sum()
    with torch.no_grad():
        Y_full.mul_(2.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
