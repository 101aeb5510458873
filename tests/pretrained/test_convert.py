"""Converter from the authors' GRAM-T checkpoints (espnet2_gram.pretrained.convert).

The authors' model is re-created here from plain torch modules laid out with the authors' key
names and shapes (``RefGRAMT``: torchvision's ViT ``Encoder`` layout for the encoder, the MW-MAE
``MWMHABlock`` layout for the decoder, torchaudio buffers for the feature extractor), with a
forward written from the authors' code conventions.  Its random state dict is converted and
loaded into our model; both must then compute the same thing.  Nothing is downloaded.
"""

import json
import math
import re
import struct
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torchaudio
import yaml
from torch import nn

from espnet2_gram.pretrained import convert as cv
from espnet2_gram.frontend.spatial_features import per_crop_normalize
from espnet2_gram.pretrained.packing import load_gram

REPO = Path(__file__).resolve().parents[2]

TINY = {
    "frontend": "binaural",
    "frontend_conf": {"fs": 8000, "n_fft": 256, "hop_length": 80, "n_mels": 32, "fmin": 50,
                      "fmax": 4000},
    "encoder": "vit",
    "encoder_conf": {"crop_frames": 40, "patch_size": [16, 8], "dim": 32, "depth": 2,
                     "heads": 2},
    "decoder": "mwmae",
    "decoder_conf": {"dim": 24, "depth": 2, "heads": 3, "windows": [2, 5, 0]},
    "masking": "random",
    "masking_conf": {"ratio": 0.8},
    "model_conf": {"crops_per_clip": 2},
}
FORMAT_FRONTEND = {"binaural": "binaural", "ambisonics": "foa", "mono": "mono"}
CHANNELS = {"binaural": 2, "ambisonics": 7, "mono": 1}


def tiny_config(fmt):
    return {**TINY, "frontend": FORMAT_FRONTEND[fmt]}


# ------------------------------------------------------------- the authors' layout, re-made
def ref_sincos(dim, rows, cols, cls_rows):
    """MAE-style 2-D sin-cos table as the authors build it: meshgrid(w, h) with w first, the
    first half of the dimensions from grid[0] (the time column), frequency-major tokens."""
    gw, gh = torch.meshgrid(torch.arange(cols, dtype=torch.float64),
                            torch.arange(rows, dtype=torch.float64), indexing="xy")

    def one(d, pos):
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2.0))
        out = pos.reshape(-1)[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    emb = torch.cat([one(dim // 2, gw), one(dim // 2, gh)], dim=1)
    return torch.cat([torch.zeros(cls_rows, dim, dtype=torch.float64), emb]).float()[None]


class RefEncoderBlock(nn.Module):
    """torchvision ``EncoderBlock``: ln_1, self_attention (nn.MultiheadAttention), ln_2, mlp
    (Linear, GELU, Dropout, Linear, Dropout)."""

    def __init__(self, d, heads, hidden):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(d, heads, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(0.0),
                                 nn.Linear(hidden, d), nn.Dropout(0.0))

    def forward(self, x):
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + self.dropout(y)
        return x + self.mlp(self.ln_2(x))


class RefEncoder(nn.Module):
    def __init__(self, n_tokens, depth, d, heads, hidden):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.zeros(1, n_tokens, d), requires_grad=False)
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", RefEncoderBlock(d, heads, hidden)) for i in range(depth)))
        self.ln = nn.LayerNorm(d, eps=1e-6)


class RefWindowHead(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.window = w
        self.relative_position_bias_table = nn.Parameter(torch.zeros(2 * w - 1, 1))
        pos = torch.arange(w)
        # the authors' index: coords[i] - coords[j] + (w - 1), for query i and key j
        self.register_buffer("relative_position_index", pos[:, None] - pos[None, :] + w - 1)


class RefGlobalHead(nn.Module):
    window = 0


class RefWMHA(nn.Module):
    def __init__(self, d, heads, windows):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.attn_heads = nn.ModuleList(RefWindowHead(w) if w else RefGlobalHead()
                                        for w in windows)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, n, c = x.shape
        hd = c // self.heads
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, hd).permute(2, 3, 0, 1, 4)
        outs = []
        for h, head in enumerate(self.attn_heads):
            q, k, v = qkv[0, h], qkv[1, h], qkv[2, h]  # (B, N, hd)
            w = head.window
            if w == 0:
                att = (q @ k.transpose(-2, -1)) * hd ** -0.5
                outs.append(att.softmax(-1) @ v)
                continue
            qw, kw, vw = (t.reshape(b * n // w, w, hd) for t in (q, k, v))
            att = (qw @ kw.transpose(-2, -1)) * hd ** -0.5
            bias = head.relative_position_bias_table[head.relative_position_index.reshape(-1)]
            att = att + bias.reshape(w, w)
            outs.append((att.softmax(-1) @ vw).reshape(b, n, hd))
        return self.proj(torch.stack(outs, dim=2).reshape(b, n, c))


class RefMlp(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class RefMWMHABlock(nn.Module):
    def __init__(self, d, heads, windows, hidden, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.wmha = RefWMHA(d, heads, windows)
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.mlp = RefMlp(d, hidden)

    def forward(self, x):
        x = x + self.wmha(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RefPatchEmbed(nn.Module):
    def __init__(self, c, d, patch):
        super().__init__()
        self.proj = nn.Conv2d(c, d, kernel_size=patch, stride=patch)


class RefGRAMT(nn.Module):
    """The authors' GRAM-T module (attribute names = state-dict keys of their Lightning
    checkpoints); ``decoder_eps`` 1e-5 is the authors' value (nn.LayerNorm default)."""

    def __init__(self, config, decoder_eps=1e-5):
        super().__init__()
        fe, enc, dec = config["frontend_conf"], config["encoder_conf"], config["decoder_conf"]
        c = CHANNELS[{v: k for k, v in FORMAT_FRONTEND.items()}[config["frontend"]]]
        pf, pt = enc["patch_size"]
        self.rows, self.cols = fe["n_mels"] // pf, enc["crop_frames"] // pt
        n = self.rows * self.cols
        d, dd = enc["dim"], dec["dim"]
        self.d, self.dd, self.n = d, dd, n
        self.patch_embed = RefPatchEmbed(c, d, (pf, pt))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.encoder = RefEncoder(n + 1, enc["depth"], d, enc["heads"], 4 * d)
        self.decoder_embed = nn.Linear(d, dd)
        self.register_buffer("mask_token", torch.zeros(1, 1, dd))
        self.decoder_blocks = nn.ModuleList(
            RefMWMHABlock(dd, dec["heads"], dec["windows"], 4 * dd, decoder_eps)
            for _ in range(dec["depth"]))
        self.register_buffer("decoder_pos_embed", torch.zeros(1, n, dd))
        self.spec_pred = nn.Sequential(nn.Linear(dd, c * pf * pt))
        with torch.device("cpu"):  # real values even when the rest is built on meta
            self.melspec = self._feature_extractor(c, fe)
        self.decoder_norm = nn.LayerNorm(dd, eps=decoder_eps)
        self.spectrogram_normalize = nn.LayerNorm([c, fe["n_mels"], enc["crop_frames"]],
                                                  elementwise_affine=False)

    @staticmethod
    def _feature_extractor(c, fe):
        if c == 7:  # the authors' FOA FeatureExtractor: Spectrogram + MelScale submodules
            melspec = nn.Module()
            melspec.spectrogram = torchaudio.transforms.Spectrogram(
                n_fft=fe["n_fft"], hop_length=fe["hop_length"], power=None)
            melspec.mel_scale = torchaudio.transforms.MelScale(
                fe["n_mels"], fe["fs"], fe["fmin"], fe["fs"] // 2, fe["n_fft"] // 2 + 1)
            return melspec
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=fe["fs"], n_fft=fe["n_fft"], win_length=fe["n_fft"],
            hop_length=fe["hop_length"], f_min=fe["fmin"], f_max=fe["fs"] // 2,
            n_mels=fe["n_mels"], power=2.0)

    def randomize(self, seed=0):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("pos_embedding"):
                    continue
                noise = torch.randn(p.shape, generator=g)
                if name.endswith("relative_position_bias_table"):
                    p.copy_(noise)  # large, so that a wrongly ordered table shows
                elif name.count(".") and ("ln" in name.split(".")[-2]
                                          or "norm" in name.split(".")[-2]):
                    p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * noise)
                else:
                    p.copy_(noise / math.sqrt(max(p.shape[-1], 1)))
            self.mask_token.copy_(0.02 * torch.randn(self.mask_token.shape, generator=g))
            self.encoder.pos_embedding.copy_(ref_sincos(self.d, self.rows, self.cols, 1))
            self.decoder_pos_embed.copy_(ref_sincos(self.dd, self.rows, self.cols, 0))
        return self

    def encode(self, x, keep):
        """``x`` (B, C, F, T) normalised; ``keep`` (B, N) True = visible."""
        b = x.shape[0]
        t = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        t = t + self.encoder.pos_embedding[:, 1:]
        t = t[keep].reshape(b, -1, self.d)
        cls = self.cls_token.expand(b, -1, -1) + self.encoder.pos_embedding[:, :1]
        h = self.encoder.dropout(torch.cat([cls, t], dim=1))
        for layer in self.encoder.layers:
            h = layer(h)
        return self.encoder.ln(h)

    def decode(self, enc_out, keep):
        b = enc_out.shape[0]
        e = self.decoder_embed(enc_out)
        x = self.mask_token.repeat(b, self.n, 1).type_as(e)
        x[keep] = e[:, 1:].reshape(-1, self.dd)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.spec_pred(self.decoder_norm(x))

    def runtime_raw(self, feats, unit):
        """The authors' HEAR runtime, 'raw' strategy, on features (B, C, F, T)."""
        b, _, _, t = feats.shape
        pad = unit - (t % unit)
        x = nn.functional.pad(feats, (0, pad)) if pad > 0 else feats
        keep = torch.ones(b, self.n, dtype=torch.bool)
        outs = []
        for i in range(x.shape[-1] // unit):
            chunk = self.spectrogram_normalize(x[..., i * unit:(i + 1) * unit])
            h = self.encode(chunk, keep)[:, 1:]  # b (f t) d -> b t (f d)
            outs.append(h.reshape(b, self.rows, self.cols, self.d).permute(0, 2, 1, 3)
                        .reshape(b, self.cols, self.rows * self.d))
        out = torch.cat(outs, dim=1)
        drop = int(self.cols * pad / unit)
        return out[:, :-drop] if drop > 0 else out


def make_reference(fmt="binaural", seed=0, decoder_eps=1e-5):
    return RefGRAMT(tiny_config(fmt), decoder_eps).randomize(seed).eval()


@pytest.fixture(scope="module")
def converted():
    """fmt -> (reference module, our model with the converted weights, report)."""
    out = {}
    for fmt in ("binaural", "ambisonics", "mono"):
        ref = make_reference(fmt, seed=len(fmt))
        model = cv.build_target_model(cv.target_config(fmt, tiny_config(fmt)))
        state, report = cv.convert_state_dict(ref.state_dict(), fmt, model=model)
        model.load_state_dict(state, strict=True)
        out[fmt] = (ref, model.eval(), report)
    return out


# ------------------------------------------------------------------------------ key map
@pytest.mark.parametrize("fmt", ["binaural", "ambisonics", "mono"])
def test_every_reference_key_is_mapped_or_dropped(fmt, converted):
    ref, model, report = converted[fmt]
    ref_keys = set(ref.state_dict())
    for key in ref_keys:  # each key matches exactly one row of the documented key map
        rows = [r for r, (pattern, _, _) in enumerate(cv.KEY_MAP)
                if re.fullmatch(pattern, key)]
        assert len(rows) == 1, (key, rows)
    mapped = {m["reference"] for m in report["mapped"]}
    dropped = {d["reference"] for d in report["dropped"]}
    assert mapped | dropped == ref_keys and not mapped & dropped
    assert dropped == {k for k in ref_keys if k.endswith(("pos_embedding", "decoder_pos_embed",
                                                          "relative_position_index"))
                       or k.startswith("melspec.")}
    required = set(cv.reference_key_shapes(model))
    assert required == {k for k in ref_keys if not k.startswith("melspec.")}
    assert report["rel_pos_tables_reversed"] is True
    assert all(c["ok"] for c in report["checks"]), report["checks"]
    assert {c["name"] for c in report["checks"]} == {
        "encoder.pos_embedding", "decoder_pos_embed", "melspec.spectrogram.window",
        "melspec.mel_scale.fb"}


def test_values_land_where_they_should(converted):
    ref, model, _ = converted["binaural"]
    r, o = ref.state_dict(), model.state_dict()
    d = model.encoder.dim
    in_proj = r["encoder.layers.encoder_layer_1.self_attention.in_proj_weight"]
    assert torch.equal(o["encoder.blocks.1.attn.qkv.weight"][d:2 * d], in_proj[d:2 * d])  # k
    assert torch.equal(o["encoder.blocks.0.norm2.weight"],
                       r["encoder.layers.encoder_layer_0.ln_2.weight"])
    assert torch.equal(o["encoder.blocks.1.mlp.fc2.bias"],
                       r["encoder.layers.encoder_layer_1.mlp.3.bias"])
    assert torch.equal(o["encoder.cls_token"], r["cls_token"])
    assert torch.equal(o["decoder.mask_token"], r["mask_token"])
    assert torch.equal(o["decoder.pred.weight"], r["spec_pred.0.weight"])
    # windows (2, 5, 0): head 0 at offset 0 (3 entries), head 1 at offset 3 (9 entries),
    # each reversed (our index j - i + w - 1 vs the authors' i - j + w - 1)
    flat = o["decoder.blocks.1.attn.window_bias.rel_pos_bias"]
    assert flat.shape == (12,)
    t0 = r["decoder_blocks.1.wmha.attn_heads.0.relative_position_bias_table"][:, 0]
    t1 = r["decoder_blocks.1.wmha.attn_heads.1.relative_position_bias_table"][:, 0]
    assert torch.equal(flat[:3], t0.flip(0)) and torch.equal(flat[3:], t1.flip(0))
    assert torch.equal(model.decoder.blocks[1].attn.window_bias.table(1), t1.flip(0))
    assert isinstance(model.decoder.mask_token, torch.Tensor)
    assert "mask_token" in dict(model.decoder.named_buffers())  # fixed, as the authors'


def test_paper_shapes_key_map_on_meta_tensors():
    """The paper sizes (ViT-B 12 x 768, MW-MAE 8 x 512, windows 2..100) without memory."""
    for fmt, config_file in (("binaural", "pretrain_binaural.yaml"),
                             ("ambisonics", "pretrain_foa.yaml"), ("mono", None)):
        conf = yaml.safe_load((REPO / "conf" / "paper" / (config_file or
                                                           "pretrain_binaural.yaml")).read_text())
        conf["frontend"] = FORMAT_FRONTEND[fmt]
        with torch.device("meta"):
            ref = RefGRAMT(conf)
        state = ref.state_dict()
        assert state["encoder.layers.encoder_layer_11.self_attention.in_proj_weight"].shape \
            == (2304, 768)
        assert state["patch_embed.proj.weight"].shape == (768, CHANNELS[fmt], 16, 8)
        assert state["decoder_blocks.7.wmha.attn_heads.5.relative_position_bias_table"].shape \
            == (199, 1)
        out, report = cv.convert_state_dict(state, fmt)  # default: the paper config
        target = cv.build_target_model(cv.target_config(fmt), meta=True).state_dict()
        assert {k: v.shape for k, v in out.items()} == {k: v.shape for k, v in target.items()}
        assert out["decoder.blocks.0.attn.window_bias.rel_pos_bias"].shape == (378,)
        assert len(report["mapped"]) + len(report["dropped"]) == len(state)
        pos = [c for c in report["checks"] if "pos" in c["name"]]
        assert pos and all(c["ok"] is None for c in pos)  # meta: not compared


# ------------------------------------------------------------------ numerical equivalence
def test_one_encoder_block_equals_the_reference_block(converted):
    ref, model, _ = converted["binaural"]
    x = torch.randn(3, 11, model.encoder.dim)
    with torch.no_grad():
        want = ref.encoder.layers.encoder_layer_1(x)
        got = model.encoder.blocks[1](x)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("fmt", ["binaural", "ambisonics", "mono"])
def test_encoder_and_decoder_equal_the_reference_forward(fmt, converted):
    ref, model, _ = converted[fmt]
    g = torch.Generator().manual_seed(1)
    crops = torch.randn(4, CHANNELS[fmt], 32, 40, generator=g) * 3 - 5
    with torch.no_grad():
        x_ref = ref.spectrogram_normalize(crops)
        x = per_crop_normalize(crops)
        torch.testing.assert_close(x, x_ref, atol=1e-5, rtol=1e-5)
        n = model.encoder.num_patches
        mask = torch.zeros(4, n, dtype=torch.bool)
        for i in range(4):
            mask[i, torch.randperm(n, generator=g)[:8]] = True
        keep = ~mask
        enc_ref = ref.encode(x_ref, keep)
        enc = model.encoder(x, mask)
        torch.testing.assert_close(enc, enc_ref, atol=2e-5, rtol=1e-5)
        full = model.encoder(x)
        torch.testing.assert_close(full, ref.encode(x_ref, torch.ones_like(keep)), atol=2e-5,
                                   rtol=1e-5)
    # decoder: the converted config uses the authors' LayerNorm eps (1e-5), so the
    # reconstructions match theirs
    with torch.no_grad():
        want = ref.decode(enc_ref, keep)
        got = model.decoder(enc, mask)
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_raw_extraction_equals_the_authors_runtime(converted):
    ref, model, _ = converted["binaural"]
    feats = torch.randn(2, 2, 32, 90) - 4  # 90 frames: 3 chunks of 40, the last padded
    with torch.no_grad():
        want = ref.runtime_raw(feats, unit=40)
        got = model.encoder.extract(feats, strategy="raw")
    assert got.shape == want.shape == (2, math.ceil(90 / 8), 2 * model.encoder.dim)
    torch.testing.assert_close(got, want, atol=3e-5, rtol=1e-5)


def test_hear_settings_of_converted_models(tmp_path):
    """The converter records the authors' HEAR runtime log offset (float32 eps for binaural
    and mono, 1e-6 for FOA) in hear_conf; the frontend keeps the training offset."""
    eps = float(torch.finfo(torch.float32).eps)
    for fmt, runtime, training in (("binaural", eps, 1e-5), ("ambisonics", 1e-6, 1e-6),
                                   ("mono", eps, 1e-5)):
        conf = cv.target_config(fmt, tiny_config(fmt))
        assert conf["hear_conf"] == {"compat": "ours", "authors_log_offset": runtime}
        assert cv.build_target_model(conf).frontend.log_offset == training
    kept = cv.target_config("binaural", {**TINY, "hear_conf": {"compat": "authors"}})
    assert kept["hear_conf"] == {"compat": "authors", "authors_log_offset": eps}
    path = tmp_path / "ref.pt"
    torch.save(make_reference().state_dict(), path)
    out, _ = cv.convert_checkpoint(path, tmp_path / "packed", "binaural", config=TINY,
                                   archive=False)
    assert yaml.safe_load((out / "config.yaml").read_text())["hear_conf"] == {
        "compat": "ours", "authors_log_offset": eps}
    assert f"hear_conf.authors_log_offset` = {eps:g}" in (out / "README.md").read_text()
    # hear_conf is a GRAMTask option: the converted config reads back as a training config
    from espnet2_gram.tasks.gram import GRAMTask

    args = GRAMTask.get_parser().parse_args(["--config", str(out / "config.yaml")])
    assert args.hear_conf == {"compat": "ours", "authors_log_offset": eps}


# ------------------------------------------------------------------ checks of fixed buffers
def test_a_different_position_convention_is_reported_and_refused(tmp_path):
    ref = make_reference()
    state = ref.state_dict()
    pos = state["encoder.pos_embedding"]
    d = pos.shape[-1]
    state["encoder.pos_embedding"] = torch.cat([pos[..., d // 2:], pos[..., : d // 2]], dim=-1)
    _, report = cv.convert_state_dict(state, "binaural", config=TINY)
    bad = cv.failed_checks(report)
    assert [c["name"] for c in bad] == ["encoder.pos_embedding"]
    assert "frequency in the first half" in bad[0]["note"]
    path = tmp_path / "swapped.pt"
    torch.save(state, path)
    with pytest.raises(ValueError, match="encoder.pos_embedding"):
        cv.convert_checkpoint(path, tmp_path / "out", "binaural", config=TINY, archive=False)
    out, report = cv.convert_checkpoint(path, tmp_path / "out", "binaural", config=TINY,
                                        force=True, archive=False)
    assert "MISMATCH" in (out / "README.md").read_text()


# ------------------------------------------------------------------------ files and packing
def write_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}
    for name, t in tensors.items():
        t = t.contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def test_safetensors_reader_round_trip_and_corruption(tmp_path):
    tensors = {
        "a": torch.randn(3, 4), "b": torch.randn(5).to(torch.bfloat16),
        "c": torch.randn(2, 2).half(), "d": torch.arange(6).reshape(2, 3),
        "e": torch.tensor([True, False]), "f": torch.zeros(0, 3), "g": torch.tensor(2.5),
    }
    path = tmp_path / "m.safetensors"
    write_safetensors(path, tensors, {"format": "pt"})
    back = cv.read_safetensors(path)
    assert set(back) == set(tensors)
    for k, t in tensors.items():
        assert back[k].dtype == t.dtype and torch.equal(back[k], t), k
    assert set(cv.load_reference_state_dict(path)) == set(tensors)
    raw = path.read_bytes()
    (tmp_path / "short.safetensors").write_bytes(raw[:-4])
    with pytest.raises(ValueError, match="data offsets"):
        cv.read_safetensors(tmp_path / "short.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="not a safetensors file"):
        cv.read_safetensors(tmp_path / "junk.safetensors")


def test_convert_hugging_face_runtime_layout(tmp_path):
    """HF release: the GRAM-T keys under ``model.`` plus the HEAR runtime's ``mel_spec.*``."""
    ref = make_reference("ambisonics", seed=3)
    state = {"model." + k: v for k, v in ref.state_dict().items()}
    runtime_fe = torchaudio.transforms.MelSpectrogram(sample_rate=8000, n_fft=256,
                                                      hop_length=80, f_min=50, f_max=4000,
                                                      n_mels=32)
    state.update({"mel_spec.melspec." + k: v for k, v in runtime_fe.state_dict().items()})
    state = {k: (v.to(torch.bfloat16) if v.is_floating_point() and "pos" not in k else v)
             for k, v in state.items()}
    path = tmp_path / "model.safetensors"
    write_safetensors(path, state)
    conf = tiny_config("ambisonics")
    out, report = cv.convert_checkpoint(path, tmp_path / "packed", "foa", config=conf)
    assert report["prefix"] == "model." and report["source_dtypes"] == ["bfloat16", "float32"]
    assert {"mel_spec.melspec.spectrogram.window", "mel_spec.melspec.mel_scale.fb"} <= {
        d["reference"] for d in report["dropped"]}
    assert {p.name for p in out.iterdir()} >= {"config.yaml", "model.pth", "README.md",
                                               "conversion_report.json"}
    assert out.with_suffix(".zip").is_file()
    card = (out / "README.md").read_text()
    assert "model.safetensors" in card and cv._sha256(path) in card
    assert "2 rows x 32 = 64 values per time column" in card
    model = load_gram(out)
    assert model.decoder.learnable_mask_token is False
    bf16_ref = RefGRAMT(conf)
    bf16_ref.load_state_dict({k: v.float() if v.is_floating_point() else v
                              for k, v in ((k[6:], v) for k, v in state.items()
                                           if k.startswith("model."))})
    x = per_crop_normalize(torch.randn(2, 7, 32, 40))
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(x), bf16_ref.eval().encode(
            x, torch.ones(2, model.encoder.num_patches, dtype=torch.bool)), atol=2e-5, rtol=1e-5)


def test_cli_converts_a_lightning_checkpoint(tmp_path):
    ref = make_reference("binaural", seed=5)
    ckpt = tmp_path / "step=325000.ckpt"
    torch.save({"epoch": 3, "global_step": 325000, "pytorch-lightning_version": "2.4.0",
                "state_dict": ref.state_dict(),
                "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4}]}],
                "lr_schedulers": [{"last_epoch": 10}], "callbacks": {"ModelCheckpoint{}": {}}},
               ckpt)
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    out = tmp_path / "packed" / "gramt_binaural"
    proc = subprocess.run(
        [sys.executable, "-m", "espnet2_gram.bin.convert_gramt", "--checkpoint", str(ckpt),
         "--format", "binaural", "--out_dir", str(out), "--config", str(config),
         "--log_offset", "1.1920929e-07", "--no_archive"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "tensors mapped" in proc.stdout and "MISMATCH" not in proc.stdout
    assert not out.with_suffix(".zip").exists()
    model = load_gram(out)
    assert model.frontend.log_offset == pytest.approx(1.1920929e-07)
    x = per_crop_normalize(torch.randn(2, 2, 32, 40))
    with torch.no_grad():
        torch.testing.assert_close(
            model.encoder(x), ref.encode(x, torch.ones(2, 10, dtype=torch.bool)),
            atol=2e-5, rtol=1e-5)


# -------------------------------------------------------------------------------- errors
class NotATensor:
    pass


def test_untrusted_pickles_are_refused(tmp_path):
    path = tmp_path / "hp.ckpt"
    torch.save({"state_dict": make_reference().state_dict(), "hyper_parameters":
                {"patch_strategy": NotATensor()}}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        cv.load_reference_state_dict(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        cv.load_reference_state_dict(tmp_path / "absent.ckpt")


def test_unknown_missing_and_misshaped_keys_are_listed():
    state = make_reference().state_dict()
    state["encoder.layers.encoder_layer_0.ls_1.gamma"] = torch.zeros(32)
    state["decoder_blocks.0.wmha.attn_heads.2.relative_position_bias_table"] = torch.zeros(3, 1)
    del state["encoder.layers.encoder_layer_1.mlp.3.bias"]
    state["decoder_embed.weight"] = torch.zeros(24, 31)
    with pytest.raises(ValueError) as err:
        cv.convert_state_dict(state, "binaural", config=TINY)
    msg = str(err.value)
    assert "2 unknown reference key(s)" in msg and "ls_1.gamma" in msg
    assert "attn_heads.2.relative_position_bias_table" in msg  # head 2 is global here
    assert "missing reference key(s) ['encoder.layers.encoder_layer_1.mlp.3.bias']" in msg
    assert "decoder_embed.weight (24, 31) (expected (24, 32))" in msg


def test_wrong_format_and_missing_module_are_clear():
    state = make_reference("binaural").state_dict()
    with pytest.raises(ValueError, match="has 2 input channels; format ambisonics expects 7"):
        cv.convert_state_dict(state, "ambisonics", config=tiny_config("ambisonics"))
    with pytest.raises(ValueError, match="cannot find the GRAM-T module"):
        cv.convert_state_dict({"foo.weight": torch.zeros(1)}, "binaural", config=TINY)
    with pytest.raises(ValueError, match="unknown format"):
        cv.convert_state_dict(state, "stereo", config=TINY)
    with pytest.raises(ValueError, match="needs frontend 'foa'"):
        cv.target_config("ambisonics", TINY)


def test_encoder_only_checkpoint_needs_the_flag(tmp_path):
    state = {k: v for k, v in make_reference().state_dict().items()
             if not cv._is_decoder_key(k)}
    with pytest.raises(ValueError, match="missing reference key"):
        cv.convert_state_dict(state, "binaural", config=TINY)
    out, report = cv.convert_state_dict(state, "binaural", config=TINY,
                                        allow_missing_decoder=True)
    assert report["decoder"].startswith("missing") and not any(k.startswith("decoder.")
                                                              for k in out)
    path = tmp_path / "enc.pt"
    torch.save(state, path)
    packed, _ = cv.convert_checkpoint(path, tmp_path / "enc", "binaural", config=TINY,
                                      allow_missing_decoder=True, archive=False)
    assert "missing: kept the fresh initialisation" in (packed / "README.md").read_text()


def test_cli_errors_are_one_line(tmp_path, capsys):
    from espnet2_gram.bin.convert_gramt import main
    from espnet2_gram.utils.cli import run

    with pytest.raises(SystemExit) as exit_info:
        run(main, ["--checkpoint", str(tmp_path / "none.ckpt"), "--format", "mono",
                   "--out_dir", str(tmp_path / "o")])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR: --checkpoint") and "no such file" in err[0]


def test_paper_configs_ship_in_the_package():
    """The converter reads the paper configs from the package (an installed package converts
    too); the recipe's conf/paper/pretrain_*.yaml are the same files, not copies."""
    assert cv.PAPER_CONF == Path(cv.__file__).resolve().parents[1] / "paper_configs"
    for name in ("pretrain_binaural.yaml", "pretrain_foa.yaml"):
        assert (REPO / "conf" / "paper" / name).resolve() == (cv.PAPER_CONF / name).resolve()
    assert cv.target_config("ambisonics")["frontend"] == "foa"
    assert "paper_configs/*.yaml" in (REPO / "pyproject.toml").read_text()
