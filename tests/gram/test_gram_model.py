"""GRAM model components: patching, masking, attention, encoder, decoders, loss."""

import math

import pytest
import torch

from espnet2_gram.frontend.spatial_features import per_crop_normalize

from espnet2_gram.gram.attention import matmul_attention, set_window_attention
from espnet2_gram.gram import (
    Attention,
    FrequencyMasking,
    GRAMEncoder,
    InverseBlockMasking,
    MWMAEDecoder,
    PatchEmbed,
    RandomMasking,
    TimeMasking,
    TransformerDecoder,
    masked_patch_mse,
    patchify,
    sincos_2d,
)
from helpers import unpatchify

torch.set_num_threads(1)

PAPER_GRID = (8, 25)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- paper settings
@pytest.fixture(scope="module")
def paper_encoder():
    torch.manual_seed(0)
    return GRAMEncoder(in_channels=2).eval()


def test_paper_encoder_tokens_and_size(paper_encoder):
    enc = paper_encoder
    assert enc.grid == PAPER_GRID and enc.num_patches == 200
    x = torch.randn(1, 2, 128, 200, generator=gen())
    with torch.no_grad():
        assert enc.patch_embed(x).shape == (1, 200, 768)
        mask = RandomMasking(0.8)(1, enc.grid, generator=gen(1))
        assert mask.sum().item() == 160
        assert enc(x, mask).shape == (1, 41, 768)  # 40 visible + CLS
    assert enc.output_size() == 768
    assert n_params(enc) == pytest.approx(85.25e6, rel=5e-3)
    blocks = sum(n_params(b) for b in enc.blocks)
    assert blocks == pytest.approx(85.06e6, rel=5e-3)


def test_paper_decoder_size_and_windows():
    dec = MWMAEDecoder(PAPER_GRID, encoder_dim=768, patch_dim=2 * 16 * 8)
    assert n_params(dec) == pytest.approx(25.7e6, rel=2e-2)
    assert dec.windows == (2, 5, 10, 25, 50, 100, 0, 0)
    with pytest.raises(ValueError, match="do not divide"):
        MWMAEDecoder(PAPER_GRID, 768, 256, windows=(2, 3, 10, 25, 50, 100, 0, 0))
    with pytest.raises(ValueError, match="one window per head"):
        MWMAEDecoder(PAPER_GRID, 768, 256, windows=(2, 5, 0))


def test_random_masking_paper_counts():
    mask = RandomMasking(0.8)(16, PAPER_GRID, generator=gen())
    assert mask.shape == (16, 200) and mask.dtype == torch.bool
    assert (mask.sum(1) == 160).all()


# --------------------------------------------------------------------------------- masking
STRATEGIES = [
    RandomMasking,
    TimeMasking,
    FrequencyMasking,
    lambda r: InverseBlockMasking(r, block=(2, 5)),
]


@pytest.mark.parametrize("make", STRATEGIES)
@pytest.mark.parametrize("grid", [(8, 25), (4, 10), (3, 7)])
@pytest.mark.parametrize("ratio", [0.8, 0.75, 0.5, 0.33])
def test_masking_exact_counts_and_independent_crops(make, grid, ratio):
    strategy = make(ratio)
    n = grid[0] * grid[1]
    mask = strategy(12, grid, generator=gen(3))
    assert mask.shape == (12, n) and mask.dtype == torch.bool
    assert (mask.sum(1) == round(ratio * n)).all()
    assert len({tuple(m.tolist()) for m in mask}) > 1  # independent per crop
    again = strategy(12, grid, generator=gen(3))
    assert torch.equal(mask, again)  # reproducible with a generator


def test_time_masking_whole_columns():
    rows, cols = PAPER_GRID
    mask = TimeMasking(0.8)(8, PAPER_GRID, generator=gen()).reshape(8, rows, cols)
    per_col = mask.sum(1)  # (B, cols)
    assert ((per_col == 0) | (per_col == rows)).all()
    assert ((per_col == rows).sum(1) == 20).all()
    # 100 = 12 whole columns + 4 patches of one more column.
    mask = TimeMasking(0.5)(8, PAPER_GRID, generator=gen()).reshape(8, rows, cols)
    per_col = mask.sum(1)
    assert ((per_col == rows).sum(1) == 12).all()
    assert ((per_col == 4).sum(1) == 1).all()
    assert ((per_col > 0).sum(1) == 13).all()


def test_frequency_masking_whole_rows():
    rows, cols = PAPER_GRID
    mask = FrequencyMasking(0.75)(8, PAPER_GRID, generator=gen()).reshape(8, rows, cols)
    per_row = mask.sum(2)  # (B, rows)
    assert ((per_row == 0) | (per_row == cols)).all()
    assert ((per_row == cols).sum(1) == 6).all()
    # 160 = 6 whole rows + 10 patches of one more row.
    mask = FrequencyMasking(0.8)(8, PAPER_GRID, generator=gen()).reshape(8, rows, cols)
    per_row = mask.sum(2)
    assert ((per_row == cols).sum(1) == 6).all()
    assert ((per_row == 10).sum(1) == 1).all()


def _visible_in_full_rectangles(visible, block):
    """Number of visible patches lying in at least one fully visible block-sized rectangle."""
    rows, cols = visible.shape
    rb, cb = block
    covered = torch.zeros_like(visible)
    for r in range(rows - rb + 1):
        for c in range(cols - cb + 1):
            if visible[r:r + rb, c:c + cb].all():
                covered[r:r + rb, c:c + cb] = True
    return int((covered & visible).sum())


def test_inverse_block_masking_keeps_rectangles():
    rows, cols = PAPER_GRID
    # One block visible: exactly one 2 x 5 rectangle.
    mask = InverseBlockMasking(0.95, block=(2, 5))(16, PAPER_GRID, generator=gen())
    assert (mask.sum(1) == 190).all()
    for m in mask:
        vis = (~m).reshape(rows, cols).nonzero()
        r, c = vis[:, 0], vis[:, 1]
        assert r.max() - r.min() == 1 and c.max() - c.min() == 4
    # 40 visible: whole rectangles except at most one partly kept block (< 10 patches).
    masker = InverseBlockMasking(0.8, block=(2, 5))
    mask = masker(16, PAPER_GRID, generator=gen(1))
    counts = [_visible_in_full_rectangles((~m).reshape(rows, cols), (2, 5)) for m in mask]
    assert min(counts) >= 40 - 9
    rand = RandomMasking(0.8)(16, PAPER_GRID, generator=gen(1))
    rand_counts = [_visible_in_full_rectangles((~m).reshape(rows, cols), (2, 5)) for m in rand]
    assert max(rand_counts) < min(counts)


# -------------------------------------------------------------------------------- patching
def test_patchify_roundtrip_and_order():
    x = torch.randn(3, 2, 32, 40, generator=gen())
    tokens = patchify(x, (16, 8))
    assert tokens.shape == (3, 2 * 5, 2 * 16 * 8)
    assert torch.equal(unpatchify(tokens, (2, 5), 2, (16, 8)), x)
    # Token f * cols + t holds x[:, :, 16f:16f+16, 8t:8t+8], flattened (C, 16, 8).
    f, t = 1, 3
    expected = x[:, :, 16 * f:16 * f + 16, 8 * t:8 * t + 8].reshape(3, -1)
    assert torch.equal(tokens[:, f * 5 + t], expected)


def test_patch_embed_order_matches_patchify():
    c, pf, pt = 2, 4, 2
    emb = PatchEmbed(c, c * pf * pt, (pf, pt))
    with torch.no_grad():
        emb.proj.weight.copy_(torch.eye(c * pf * pt).reshape(c * pf * pt, c, pf, pt))
        emb.proj.bias.zero_()
    x = torch.randn(2, c, 12, 10, generator=gen())
    torch.testing.assert_close(emb(x), patchify(x, (pf, pt)))


def test_sincos_positions_fixed_and_factorised():
    enc = GRAMEncoder(1, n_mels=64, crop_frames=80, dim=32, depth=1, heads=2)
    rows, cols = enc.grid
    assert (rows, cols) == (4, 10)
    assert "pos_embed" in dict(enc.named_buffers())
    assert all(p is not enc.pos_embed for p in enc.parameters())
    assert not enc.pos_embed.requires_grad
    pe = enc.pos_embed[0].reshape(rows, cols, 32)
    time_half, freq_half = pe[..., :16], pe[..., 16:]
    assert torch.equal(time_half, time_half[:1].expand_as(time_half))  # same for every row
    assert torch.equal(freq_half, freq_half[:, :1].expand_as(freq_half))  # same for every column
    assert not torch.allclose(time_half[0, 1], time_half[0, 2])
    assert not torch.allclose(freq_half[1, 0], freq_half[2, 0])
    # Explicit value: time column 3, dimension i < 8 is sin(3 * 10000 ** (-i / 8)).
    i = torch.arange(8, dtype=torch.float64)
    omega = 1.0 / 10000 ** (i / 8)
    torch.testing.assert_close(pe[0, 3, :8].double(), torch.sin(3 * omega), atol=1e-6, rtol=0)
    torch.testing.assert_close(pe[2, 0, 24:].double(), torch.cos(2 * omega), atol=1e-6, rtol=0)
    with_cls = sincos_2d(32, (rows, cols), cls_token=True)
    assert torch.equal(with_cls[0], torch.zeros(32)) and torch.equal(with_cls[1:], enc.pos_embed[0])


# ------------------------------------------------------------------------------- attention
def naive_attention(attn, x):
    """Per-head softmax with an explicit window mask and relative position bias."""
    b, n, d = x.shape
    qkv = attn.qkv(x).reshape(b, n, 3, attn.heads, d // attn.heads)
    heads = []
    for h, w in enumerate(attn.windows):
        q, k, v = qkv[:, :, 0, h], qkv[:, :, 1, h], qkv[:, :, 2, h]
        logits = q @ k.transpose(1, 2) / math.sqrt(d // attn.heads)
        if w > 0:
            table = attn.window_bias.table(h)
            assert table.numel() == 2 * w - 1
            rows = []
            for i in range(n):
                row = []
                for j in range(n):
                    inside = i // w == j // w
                    row.append(table[j - i + w - 1] if inside else torch.tensor(-math.inf))
                rows.append(torch.stack(row))
            logits = logits + torch.stack(rows)
        heads.append(torch.softmax(logits, dim=-1) @ v)
    return attn.proj(torch.cat(heads, dim=-1))


@pytest.mark.parametrize("impl", ["auto", "dense"])
@pytest.mark.parametrize("windows", [(2, 5, 0, 3), None, (4, 4, 4, 4), (2, 2, 0, 10)])
def test_windowed_attention_matches_naive(windows, impl):
    torch.manual_seed(0)
    attn = Attention(32, 4, windows=windows, window_attention=impl)
    if attn.window_bias is not None:
        with torch.no_grad():
            attn.window_bias.rel_pos_bias.normal_(0, 1.0)  # large enough to matter
    # auto: 20 tokens in windows where every size divides 20, 13 tokens through the mask.
    for n in (20, 13, 20):  # second 20 hits the cache
        x = torch.randn(2, n, 32, requires_grad=True)
        fast = attn(x)
        ref = naive_attention(attn, x)
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    if attn.window_bias is None:
        return
    params = [attn.window_bias.rel_pos_bias, attn.qkv.weight]
    g_fast = torch.autograd.grad(attn(x).square().sum(), params)
    g_ref = torch.autograd.grad(naive_attention(attn, x).square().sum(), params)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    for h, w in enumerate(attn.windows):
        if w > 0:
            start = sum(2 * v - 1 for v in attn.windows[:h] if v > 0)
            assert g_fast[0][start:start + 2 * w - 1].abs().sum() > 0


def test_window_form_equals_dense_mask_paper_decoder():
    """The paper decoder's heads (windows 2..100 and two global ones on 200 tokens): the
    windows form gives the dense-mask outputs and gradients to float32 noise."""
    torch.manual_seed(0)
    grid = (8, 25)
    dec = MWMAEDecoder(grid, encoder_dim=48, patch_dim=16, dim=64, depth=2, heads=8)
    with torch.no_grad():
        for blk in dec.blocks:
            blk.attn.window_bias.rel_pos_bias.normal_(0, 1.0)
    assert all(blk.attn.uses_windows(200) for blk in dec.blocks)
    mask = RandomMasking(0.8)(3, grid, generator=gen())
    tokens = torch.randn(3, 41, 48, generator=gen(1))
    weights = torch.randn(3, 200, 16, generator=gen(2))
    results = {}
    for impl in ("windows", "dense"):
        set_window_attention(dec, impl)
        dec.zero_grad()
        x = tokens.clone().requires_grad_(True)
        out = dec(x, mask, 40)
        (out * weights).sum().backward()
        results[impl] = [out.detach(), x.grad] + [p.grad.clone() for p in dec.parameters()]
    assert not dec.blocks[0].attn.uses_windows(200)
    for a, b in zip(results["windows"], results["dense"]):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=1e-4)


def test_gpu_kernel_of_windows_equals_sdpa():
    """The windows' GPU kernel (explicit matmuls, softmax) against SDPA on the same windows:
    outputs and the gradients of q, k, v and the bias, float32 and under bf16 autocast."""
    g = gen(4)
    q, k, v = (torch.randn(2, 3, 4, 25, 16, generator=g, requires_grad=True) for _ in range(3))
    bias = torch.randn(1, 3, 1, 25, 25, generator=g, requires_grad=True)
    for dtype, tol in ((None, 1e-5), (torch.bfloat16, 3e-2)):
        results = []
        for attend in (matmul_attention, torch.nn.functional.scaled_dot_product_attention):
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                out = attend(q, k, v, attn_mask=bias)
            grads = torch.autograd.grad(out.float().square().sum(), (q, k, v, bias))
            results.append([out.float(), *grads])
        for a, b in zip(*results):
            torch.testing.assert_close(a, b, atol=tol, rtol=tol)


def test_window_form_refuses_windows_that_do_not_divide():
    attn = Attention(16, 2, windows=(3, 0), window_attention="windows")
    assert attn(torch.randn(1, 12, 16)).shape == (1, 12, 16)
    with pytest.raises(ValueError, match="divide the sequence length 10"):
        attn(torch.randn(1, 10, 16))
    with pytest.raises(ValueError, match="window_attention must be one of"):
        Attention(16, 2, windows=(3, 0), window_attention="flex")
    with pytest.raises(ValueError, match="window_attention must be one of"):
        set_window_attention(attn, "sparse")


def test_windowed_attention_locality():
    torch.manual_seed(0)
    attn = Attention(16, 2, windows=(5, 5))
    x = torch.randn(1, 20, 16)
    y = attn(x)
    x2 = x.clone()
    x2[0, 7] += 1.0  # window [5, 10)
    changed = (attn(x2) - y).abs().amax(-1)[0] > 1e-6
    assert changed.nonzero().flatten().tolist() == [5, 6, 7, 8, 9]


# --------------------------------------------------------------------------------- encoder
def tiny_encoder(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(in_channels=2, n_mels=32, crop_frames=200, dim=16, depth=2, heads=2)
    cfg.update(kw)
    return GRAMEncoder(**cfg).eval()


def test_encoder_keeps_visible_tokens_in_order():
    enc = tiny_encoder()
    x = torch.randn(3, 2, 32, 200, generator=gen())
    mask = RandomMasking(0.8)(3, enc.grid, generator=gen(1))
    with torch.no_grad():
        h = enc.embed(x, mask)
        full = enc.patch_embed(x) + enc.pos_embed
        assert h.shape == (3, 1 + 10, 16)
        torch.testing.assert_close(h[:, 1:], full[~mask].reshape(3, 10, 16))
        assert torch.equal(h[:, 0], enc.cls_token[0].expand(3, -1))
        assert enc(x, mask).shape == (3, 11, 16)
    bad = mask.clone()
    bad[0, (~bad[0]).nonzero()[0]] = True
    with pytest.raises(ValueError, match="same number"):
        enc(x, bad)
    # With the count given (the training step), the same selection; a wrong row is caught by
    # the asynchronous check.
    with torch.no_grad():
        torch.testing.assert_close(enc(x, mask, 10), enc(x, mask))
    with pytest.raises(RuntimeError, match="leave 10 patches visible"):
        enc(x, bad, 10)


def test_encoder_init():
    enc = GRAMEncoder(2, n_mels=32, crop_frames=40, dim=64, depth=2, heads=4, cls_init_std=0.5)
    for m in enc.modules():
        if isinstance(m, torch.nn.Linear):
            assert torch.count_nonzero(m.bias) == 0
            bound = math.sqrt(6.0 / (m.in_features + m.out_features))
            assert m.weight.abs().max() <= bound
    assert 0.2 < enc.cls_token.std().item() < 1.0


def test_forward_layers():
    enc = tiny_encoder()
    x = torch.randn(2, 2, 32, 200, generator=gen())
    with torch.no_grad():
        states = enc.forward_layers(x)
        assert len(states) == enc.depth + 1
        torch.testing.assert_close(states[-1], enc(x))
        l1, last = enc.forward_layers(x, [1, -1])
        torch.testing.assert_close(l1, states[1])
        torch.testing.assert_close(last, states[2])
    with pytest.raises(ValueError):
        enc.forward_layers(x, [3])


@pytest.mark.parametrize(
    "t,n_chunks,n_frames", [(150, 1, 19), (200, 1, 25), (437, 3, 55), (400, 2, 50)]
)
def test_extract_shapes(t, n_chunks, n_frames):
    enc = tiny_encoder()
    assert enc.num_chunks(t) == n_chunks and enc.num_frames(t) == n_frames
    x = torch.randn(2, 2, 32, t, generator=gen())
    with torch.no_grad():
        assert enc.extract(x, "mean").shape == (2, 16)
        assert enc.extract(x, "cls").shape == (2, 16)
        assert enc.extract(x, "raw").shape == (2, n_frames, 2 * 16)
    assert enc.raw_frame_dim() == 32


def test_extract_matches_manual_chunking():
    enc = tiny_encoder()
    rows, cols = enc.grid
    x = torch.randn(2, 2, 32, 437, generator=gen())
    padded = torch.nn.functional.pad(x, (0, 600 - 437))
    with torch.no_grad():
        outs = [enc(padded[..., 200 * i:200 * (i + 1)]) for i in range(3)]
        cls = torch.stack([o[:, 0] for o in outs], 1).mean(1)
        # mean: patch tokens of the 55 columns that hold real frames (437 / 8, rounded up)
        columns = torch.cat([o[:, 1:].reshape(2, rows, cols, -1).transpose(1, 2) for o in outs],
                            1)
        mean = columns[:, :55].mean((1, 2))
        torch.testing.assert_close(enc.extract(x, "cls", normalize=False), cls, atol=1e-5,
                                   rtol=1e-5)
        torch.testing.assert_close(enc.extract(x, "mean", normalize=False), mean, atol=1e-5,
                                   rtol=1e-5)
        raw = enc.extract(x, "raw", normalize=False)
        # normalize=True z-scores every chunk (padding included) like the training crops
        chunks = per_crop_normalize(padded.reshape(2, 2, 32, 3, 200).permute(0, 3, 1, 2, 4)
                                    .reshape(6, 2, 32, 200))
        renormed = chunks.reshape(2, 3, 2, 32, 200).permute(0, 2, 3, 1, 4).reshape(2, 2, 32, 600)
        torch.testing.assert_close(enc.extract(x, "raw"),
                                   enc.extract(renormed, "raw", normalize=False)[:, :55],
                                   atol=1e-5, rtol=1e-5)
        # frame 30 = chunk 1, column 5: rows 0 and 1 concatenated.
        o = outs[1][:, 1:]
        expected = torch.cat([o[:, 0 * cols + 5], o[:, 1 * cols + 5]], -1)
        torch.testing.assert_close(raw[:, 30], expected, atol=1e-5, rtol=1e-5)
        # exactly 400 frames: two chunks, no padded third chunk.
        x400 = x[..., :400]
        two = [enc(x400[..., :200]), enc(x400[..., 200:])]
        torch.testing.assert_close(
            enc.extract(x400, "cls", normalize=False), (two[0][:, 0] + two[1][:, 0]) / 2,
            atol=1e-5, rtol=1e-5,
        )
        torch.testing.assert_close(enc.extract(x400, "raw", normalize=False), raw[:, :50],
                                   atol=1e-5, rtol=1e-5)
        # chunked passes give the same result
        torch.testing.assert_close(
            enc.extract(x, "raw", max_chunks_per_pass=2, normalize=False), raw, atol=1e-5,
            rtol=1e-5,
        )


def test_extract_batch_independence_and_layers():
    enc = tiny_encoder()
    x = torch.randn(3, 2, 32, 437, generator=gen())
    with torch.no_grad():
        for strategy in ("mean", "cls", "raw"):
            together = enc.extract(x, strategy)
            alone = torch.cat([enc.extract(x[i:i + 1], strategy) for i in range(3)])
            torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
        other = x.clone()
        other[1:] = torch.randn(2, 2, 32, 437, generator=gen(5))
        torch.testing.assert_close(enc.extract(other, "mean")[0], enc.extract(x, "mean")[0])
        l0, l1, l2 = (enc.extract(x, "mean", layer=l) for l in (0, 1, 2))
        assert not torch.allclose(l1, l2, atol=1e-3) and not torch.allclose(l0, l1, atol=1e-3)
        torch.testing.assert_close(enc.extract(x, "mean", layer=-1), enc.extract(x, "mean"))
    with pytest.raises(ValueError):
        enc.extract(x, "max")


# -------------------------------------------------------------------------------- decoders
def test_decoder_puts_visible_tokens_in_their_slots():
    torch.manual_seed(0)
    grid = (4, 10)
    dec = MWMAEDecoder(
        grid, encoder_dim=16, patch_dim=8, dim=16, depth=0, heads=4, windows=(2, 5, 0, 0)
    )
    mask = RandomMasking(0.75)(2, grid, generator=gen())
    enc_tokens = torch.randn(2, 1 + 10, 16, generator=gen(1))
    filled = dec.fill(enc_tokens, mask)
    torch.testing.assert_close(filled[~mask].reshape(2, 10, 16), dec.embed(enc_tokens[:, 1:]))
    assert torch.equal(filled[mask], dec.mask_token[0].expand(int(mask.sum()), -1))
    # Depth 0: each prediction depends only on its own slot.
    with torch.no_grad():
        pred = dec(enc_tokens, mask)
        assert pred.shape == (2, 40, 8)
        j = 3
        bumped = enc_tokens.clone()
        bumped[:, 1 + j] += 1.0
        changed = (dec(bumped, mask) - pred).abs().amax(-1) > 1e-6
        for b in range(2):
            slot = (~mask[b]).nonzero().flatten()[j].item()
            assert changed[b].nonzero().flatten().tolist() == [slot]
        cls_bumped = enc_tokens.clone()
        cls_bumped[:, 0] += 1.0
        torch.testing.assert_close(dec(cls_bumped, mask), pred)  # MW-MAE drops the CLS


def test_decoder_masked_slots_and_mask_token_flags():
    grid = (4, 10)
    torch.manual_seed(0)
    dec = MWMAEDecoder(grid, 16, 8, dim=16, depth=1, heads=4, windows=(2, 5, 0, 0))
    mask = RandomMasking(0.75)(2, grid, generator=gen())
    enc_tokens = torch.randn(2, 11, 16, generator=gen(1))
    dec(enc_tokens, mask).square().sum().backward()
    assert dec.mask_token.grad is not None and dec.mask_token.grad.abs().sum() > 0
    fixed = MWMAEDecoder(grid, 16, 8, dim=16, depth=1, heads=4, windows=(2, 5, 0, 0),
                         learnable_mask_token=False)
    assert "mask_token" in fixed.state_dict()
    assert all(p is not fixed.mask_token for p in fixed.parameters())
    with pytest.raises(ValueError):
        dec(enc_tokens[:, :10], mask)  # 9 visible tokens for 10 visible slots


def test_transformer_decoder_keeps_cls():
    grid = (4, 10)
    torch.manual_seed(0)
    dec = TransformerDecoder(grid, 16, 8, dim=16, depth=1, heads=4)
    assert dec.pos_embed.shape == (1, 41, 16)
    mask = RandomMasking(0.75)(2, grid, generator=gen())
    enc_tokens = torch.randn(2, 11, 16, generator=gen(1))
    with torch.no_grad():
        pred = dec(enc_tokens, mask)
        assert pred.shape == (2, 40, 8)
        bumped = enc_tokens.clone()
        bumped[:, 0] += 1.0
        assert not torch.allclose(dec(bumped, mask), pred)


# ------------------------------------------------------------------------------------ loss
def test_masked_patch_mse():
    pred = torch.zeros(2, 3, 4)
    target = torch.zeros(2, 3, 4)
    target[0, 0] = 2.0  # masked: error 4 per value
    target[1, 2, :2] = 1.0  # masked: mean error 0.5
    target[0, 1] = 100.0  # visible: ignored
    mask = torch.tensor([[True, False, False], [False, False, True]])
    assert masked_patch_mse(pred, target, mask, channels=1).item() == pytest.approx(2.25)
    assert masked_patch_mse(pred, target, mask, channels=7).item() == pytest.approx(7 * 2.25)



def test_masked_patch_mse_with_channel_weights():
    """Two channels of two values each: the patch error is the weighted mean of the channels'
    mean errors; equal weights give the unweighted loss."""
    pred = torch.zeros(1, 2, 4)
    target = torch.zeros(1, 2, 4)
    target[0, 0] = torch.tensor([1.0, 1.0, 3.0, 3.0])  # channel errors 1 and 9
    target[0, 1] = 50.0  # visible: ignored
    mask = torch.tensor([[True, False]])
    weights = torch.tensor([1.0, 3.0])
    assert masked_patch_mse(pred, target, mask, 2, weights).item() == pytest.approx(
        (1 * 1 + 3 * 9) / 4 * 2)
    assert masked_patch_mse(pred, target, mask, 2, torch.tensor([2.0, 2.0])).item() == \
        pytest.approx(masked_patch_mse(pred, target, mask, 2).item())


# -------------------------------------------------------------------------------- training
def test_tiny_mae_overfits_one_batch():
    torch.manual_seed(0)
    c, patch = 2, (4, 4)
    enc = GRAMEncoder(c, n_mels=16, crop_frames=40, patch_size=patch, dim=32, depth=2, heads=4)
    assert enc.grid == (4, 10)
    dec = MWMAEDecoder(enc.grid, 32, c * patch[0] * patch[1], dim=32, depth=2, heads=4,
                       windows=(2, 5, 0, 0))
    x = torch.randn(4, c, 16, 40, generator=gen())
    target = patchify(x, patch)
    mask = RandomMasking(0.8)(4, enc.grid, generator=gen(1))
    opt = torch.optim.AdamW(list(enc.parameters()) + list(dec.parameters()), lr=3e-3,
                            weight_decay=0.05)
    losses = []
    for _ in range(300):
        loss = masked_patch_mse(dec(enc(x, mask), mask), target, mask, channels=c)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if losses[-1] < losses[0] / 10:
            break
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1], len(losses))


def test_loss_in_float32_under_half_precision():
    pred = torch.randn(2, 5, 8).bfloat16()
    target = torch.randn(2, 5, 8)
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert masked_patch_mse(pred, target, mask).dtype == torch.float32


def test_window_cache_built_in_inference_mode_supports_training():
    attn = Attention(16, 2, windows=(4, 0))
    x = torch.randn(1, 12, 16)
    with torch.inference_mode():
        attn(x)  # builds the cached static mask
    attn(x).sum().backward()
    assert attn.window_bias.rel_pos_bias.grad.abs().sum() > 0
