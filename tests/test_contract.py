"""The product-state contraction against a dense reference, and its float32 stability."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tnml.tensor.contract import choose_path, contract_with_output


def dense_reference(cores, output_core, phi, output_site):
    """Contract the full MPS into a dense (d,)*N x L tensor, then with each product state."""
    n_sites = phi.shape[1]
    bond = cores.shape[1]
    e0 = torch.zeros(bond, dtype=cores.dtype)
    e0[0] = 1.0
    site_cores = [*cores[:output_site], None, *cores[output_site:]]
    # Build W[s_0, ..., s_{N-1}, l] by left-to-right contraction of the full tensor.
    state = e0[None, :]  # (prod of d so far, D)
    out_axis = None
    for i in range(n_sites):
        if i == output_site:
            t = torch.einsum("pl,lsor->psor", state, output_core)
            out_axis = t.shape[2]
            state = t.permute(0, 2, 1, 3).reshape(-1, bond)  # (p * L * d, D), L before s
        else:
            state = torch.einsum("pl,lsr->psr", state, site_cores[i]).reshape(-1, bond)
    dense = state @ e0  # flattened over (s_0..s_{k-1}, l, s_k, ..., s_{N-1})
    d = phi.shape[2]
    shape = [d] * output_site + [out_axis] + [d] * (n_sites - output_site)
    dense = dense.reshape(shape)
    dense = dense.movedim(output_site, -1)  # (d,)*N x L
    result = dense.expand(phi.shape[0], *dense.shape)
    for i in range(n_sites):
        result = torch.einsum("bs...,bs->b...", result, phi[:, i])
    return result


@settings(max_examples=30, deadline=None)
@given(
    n_sites=st.integers(1, 7),
    bond=st.integers(1, 4),
    phys=st.integers(2, 3),
    labels=st.integers(1, 3),
    data=st.data(),
)
def test_contraction_matches_dense(n_sites, bond, phys, labels, data):
    output_site = data.draw(st.integers(0, n_sites - 1))
    seed = data.draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    cores = torch.randn(n_sites - 1, bond, phys, bond, generator=g, dtype=torch.float64)
    output_core = torch.randn(bond, phys, labels, bond, generator=g, dtype=torch.float64)
    phi = torch.randn(3, n_sites, phys, generator=g, dtype=torch.float64)
    expected = dense_reference(cores, output_core, phi, output_site)
    for path in ("sequential", "pairwise"):
        mantissa, log_scale = contract_with_output(cores, output_core, phi, output_site, path)
        got = mantissa * log_scale.exp()[:, None]
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
        # the mantissa is renormalised: its scale does not grow with N
        assert torch.all(mantissa.abs().amax(dim=1) < 10 * bond**2 + 10)


def test_paths_agree_and_stay_finite_in_float32_for_784_sites():
    g = torch.Generator().manual_seed(0)
    n_sites, bond = 784, 32
    eye = torch.eye(bond)
    cores = eye[None, :, None, :].repeat(n_sites - 1, 1, 2, 1) * 1.3
    cores += 0.05 * torch.randn(cores.shape, generator=g)
    output_core = torch.randn(bond, 2, 10, bond, generator=g)
    x = torch.rand(4, n_sites, generator=g)
    phi = torch.stack([torch.cos(torch.pi * x / 2), torch.sin(torch.pi * x / 2)], -1)
    m_seq, s_seq = contract_with_output(cores, output_core, phi, 392, "sequential")
    m_pair, s_pair = contract_with_output(cores, output_core, phi, 392, "pairwise")
    assert torch.isfinite(m_seq).all() and torch.isfinite(s_seq).all()
    # the raw amplitudes are far outside float32 (exp(log_scale) > 1e38) ...
    assert (s_seq > 100).all()
    # ... yet both paths agree on the log-scale and the direction of the amplitude vector
    torch.testing.assert_close(
        s_seq + m_seq.norm(dim=1).log(), s_pair + m_pair.norm(dim=1).log(), rtol=1e-4, atol=1e-3
    )
    cos = torch.nn.functional.cosine_similarity(m_seq, m_pair, dim=1)
    assert (cos > 0.999).all()


def test_choose_path():
    assert choose_path(4) == "sequential"
    assert choose_path(4, device_type="cuda") == "pairwise"
    assert choose_path(128, device_type="cuda") == "sequential"
    assert choose_path(128, "pairwise") == "pairwise"


def test_sequential_gradients_match_finite_differences():
    """The hand-written backward of the sequential path, against numerical derivatives.

    Chains of unequal length (identity padding), longer than the renormalisation interval,
    and gradients with respect to both the cores and the feature vectors.
    """
    g = torch.Generator().manual_seed(1)
    for n_sites, output_site in [(2, 0), (5, 3), (21, 4), (21, 10)]:
        eye = torch.eye(3, dtype=torch.float64)
        cores = eye[None, :, None, :] + 0.4 * torch.randn(
            n_sites - 1, 3, 2, 3, generator=g, dtype=torch.float64
        )
        output_core = torch.randn(3, 2, 2, 3, generator=g, dtype=torch.float64)
        phi = torch.rand(4, n_sites, 2, generator=g, dtype=torch.float64)
        cores.requires_grad_(True)
        phi.requires_grad_(True)

        def amplitudes(cores, phi, output_core=output_core, output_site=output_site):
            return contract_with_output(cores, output_core, phi, output_site, "sequential")

        assert torch.autograd.gradcheck(amplitudes, (cores, phi), eps=1e-6, atol=1e-7)


def test_sequential_and_pairwise_gradients_agree():
    g = torch.Generator().manual_seed(2)
    cores = torch.randn(30, 4, 2, 4, generator=g, dtype=torch.float64) * 0.5
    cores += torch.eye(4, dtype=torch.float64)[None, :, None, :]
    output_core = torch.randn(4, 2, 3, 4, generator=g, dtype=torch.float64)
    phi = torch.rand(5, 31, 2, generator=g, dtype=torch.float64)
    weights = torch.randn(5, 3, generator=g, dtype=torch.float64)
    grads = []
    for path in ("sequential", "pairwise"):
        leaf = cores.clone().requires_grad_(True)
        mantissa, log_scale = contract_with_output(leaf, output_core, phi, 11, path)
        ((mantissa * weights).sum() + log_scale.sum()).backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-10)


def test_sequential_backward_can_run_twice_on_a_retained_graph():
    """The backward pass reuses its step matrices as gradient storage; a second pass over the
    same graph must rebuild them and give the same gradients."""
    g = torch.Generator().manual_seed(3)
    cores = torch.randn(12, 3, 2, 3, generator=g, dtype=torch.float64).requires_grad_(True)
    output_core = torch.randn(3, 2, 2, 3, generator=g, dtype=torch.float64)
    phi = torch.rand(4, 13, 2, generator=g, dtype=torch.float64)
    mantissa, log_scale = contract_with_output(cores, output_core, phi, 5, "sequential")
    loss = mantissa.square().sum() + log_scale.sum()
    (first,) = torch.autograd.grad(loss, cores, retain_graph=True)
    (second,) = torch.autograd.grad(loss, cores)
    torch.testing.assert_close(first, second, rtol=0, atol=0)


def test_complex_cores_get_exact_gradients_on_the_sequential_path():
    g = torch.Generator().manual_seed(4)
    cores = torch.randn(6, 2, 2, 2, generator=g, dtype=torch.complex128).requires_grad_(True)
    output_core = torch.randn(2, 2, 2, 2, generator=g, dtype=torch.complex128)
    phi = torch.rand(3, 7, 2, generator=g, dtype=torch.float64).to(torch.complex128)

    def magnitude(cores):
        mantissa, log_scale = contract_with_output(cores, output_core, phi, 3, "sequential")
        return (mantissa.abs() * log_scale.real.exp()[:, None]).sum()

    assert torch.autograd.gradcheck(magnitude, (cores,), eps=1e-6, atol=1e-7)
