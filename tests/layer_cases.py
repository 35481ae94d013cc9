"""Every built-in layer at several shapes, with its PyTorch counterpart, for the table-driven tests.

``Frozen`` is a stop-gradient: it has no parameters and its backward returns zeros (its
counterpart is a frozen torch module on a detached input); on the GPU a frozen Sequential moves with it.
"""
from __future__ import annotations

import numpy as np

import nkernels as nk

L = nk.layers

#: (id, layer factory, input shape): odd sizes, stride above 1, padding, batch of 1
CASES = [
    ("dense", lambda: L.Dense(5, 3), (4, 5)),
    ("dense-nobias-batch1", lambda: L.Dense(7, 2, bias=False), (1, 7)),
    ("conv2d-pad", lambda: L.Conv2D(2, 3, 3, padding=1), (2, 2, 5, 4)),
    ("conv2d-stride-rect", lambda: L.Conv2D(3, 2, (3, 2), stride=2, padding=(1, 0)), (1, 3, 7, 6)),
    ("conv2d-nobias", lambda: L.Conv2D(1, 2, 2, bias=False), (3, 1, 4, 5)),
    # 3x3, stride 1, 16 channels: the CPU kernels' Winograd path (nkernels.kernels.cpu.winograd)
    ("conv2d-winograd", lambda: L.Conv2D(16, 16, 3, padding=1), (2, 16, 4, 4)),
    ("conv1d", lambda: L.Conv1D(3, 2, 3), (2, 3, 7)),
    ("conv1d-stride-pad", lambda: L.Conv1D(2, 4, 4, stride=3, padding=2), (1, 2, 9)),
    ("maxpool2d", lambda: L.MaxPool2D(2), (2, 3, 5, 4)),
    ("maxpool2d-overlap", lambda: L.MaxPool2D(3, stride=1), (1, 2, 5, 5)),
    ("maxpool1d", lambda: L.MaxPool1D(2), (2, 3, 7)),
    ("maxpool1d-stride3", lambda: L.MaxPool1D(2, stride=3), (1, 1, 8)),
    ("avgpool2d", lambda: L.AvgPool2D(2), (2, 2, 4, 6)),
    ("avgpool2d-overlap", lambda: L.AvgPool2D(3, stride=2), (1, 3, 7, 5)),
    ("relu", lambda: L.ReLU(), (3, 7)),
    ("sigmoid", lambda: L.Sigmoid(), (2, 3, 4)),
    ("tanh", lambda: L.Tanh(), (1, 5)),
    ("silu", lambda: L.SiLU(), (3, 2, 5)),
    ("flatten", lambda: L.Flatten(), (2, 3, 2, 2)),
    ("dropout", lambda: L.Dropout(0.3, seed=7), (4, 6)),
    ("lstm-last", lambda: L.LSTM(3, 4), (2, 5, 3)),
    ("lstm-seq-batch1", lambda: L.LSTM(2, 3, return_sequences=True), (1, 4, 2)),
    ("gru-last", lambda: L.GRU(3, 4), (2, 5, 3)),
    ("gru-seq-t1", lambda: L.GRU(4, 2, return_sequences=True), (3, 1, 4)),
    ("frozen-sequential", lambda: L.Frozen(nk.Sequential([L.Dense(5, 4), L.Tanh()], seed=2)), (3, 5)),
    ("frozen-conv-batch1", lambda: L.Frozen(nk.Sequential([L.Conv2D(2, 3, 3, padding=1), L.ReLU(), L.Flatten()],
                                                          seed=4)), (1, 2, 4, 3)),
    ("residual", lambda: L.Residual([L.Dense(5, 5), L.Tanh(), L.Dense(5, 5)]), (3, 5)),
    ("residual-projection-conv", lambda: L.Residual([L.Conv2D(2, 3, 3, stride=2, padding=1), L.Tanh(),
                                                     L.Conv2D(3, 3, 3, padding=1)],
                                                    shortcut=[L.Conv2D(2, 3, 1, stride=2)]), (2, 2, 5, 4)),
    ("residual-dropout-flatten-batch1", lambda: L.Residual([L.Flatten(), L.Dropout(0.25, seed=3), L.Dense(6, 6)],
                                                           shortcut=[L.Flatten()]), (1, 2, 3)),
    ("batchnorm1d", lambda: L.BatchNorm1D(3), (4, 3)),
    ("batchnorm1d-ncl-cumulative", lambda: L.BatchNorm1D(2, momentum=None), (2, 2, 3)),
    ("batchnorm2d", lambda: L.BatchNorm2D(2, eps=1e-3, momentum=0.2), (2, 2, 3, 2)),
    ("layernorm", lambda: L.LayerNorm(5), (3, 5)),
    ("layernorm-2d-nobias", lambda: L.LayerNorm((2, 3), bias=False), (2, 4, 2, 3)),
    ("layernorm-noaffine-batch1", lambda: L.LayerNorm(4, elementwise_affine=False), (1, 3, 4)),
    ("convtranspose2d", lambda: L.ConvTranspose2D(2, 3, 3), (2, 2, 3, 2)),
    ("convtranspose2d-stride-pad-outpad", lambda: L.ConvTranspose2D(2, 2, (3, 2), stride=(2, 3), padding=(1, 0),
                                                                    output_padding=(1, 2)), (1, 2, 3, 2)),
    ("convtranspose2d-nobias-stride-batch1", lambda: L.ConvTranspose2D(1, 2, 2, stride=2, bias=False), (1, 1, 2, 3)),
    ("upsample2d", lambda: L.Upsample2D(2), (2, 2, 2, 3)),
    ("upsample2d-scale3", lambda: L.Upsample2D(3), (1, 1, 2, 1)),
    ("globalavgpool2d", lambda: L.GlobalAvgPool2D(), (2, 3, 3, 2)),
    ("gelu", lambda: L.GELU(), (3, 7)),
    ("gelu-tanh", lambda: L.GELU("tanh"), (2, 3, 4)),
    ("multiheadattention", lambda: L.MultiHeadAttention(6, 2), (2, 4, 6)),
    ("multiheadattention-causal-nobias-batch1", lambda: L.MultiHeadAttention(4, 4, bias=False, causal=True), (1, 3, 4)),
    ("multiheadattention-dropout-causal", lambda: L.MultiHeadAttention(4, 2, dropout=0.25, causal=True, seed=5),
     (2, 3, 4)),
    ("dense-sequence", lambda: L.Dense(4, 3), (2, 5, 4)),
    ("dense-4d-nobias-batch1", lambda: L.Dense(3, 2, bias=False), (1, 2, 3, 3)),
    ("embedding", lambda: L.Embedding(7, 3), (2, 5)),
    ("embedding-padding-batch1", lambda: L.Embedding(5, 4, padding_idx=1), (1, 6)),
    ("positionalembedding", lambda: L.PositionalEmbedding(6, 3), (2, 4, 3)),
    ("positionalembedding-full-batch1", lambda: L.PositionalEmbedding(3, 2), (1, 3, 2)),
    ("globalavgpool1d", lambda: L.GlobalAvgPool1D(), (2, 5, 3)),
]


def kink_free_input(layer, shape, rng):
    """Inputs away from the points where a layer is not differentiable (ReLU's 0, max-pool ties);
    for an Embedding, valid indices that every row but the padding one is likely to meet (the
    padding row's gradient is zero by PyTorch's rule, not by differentiation: the gradient check
    would flag it; tests/test_token_layers.py checks it against torch)."""
    if isinstance(layer, L.Embedding):
        rows = np.setdiff1d(np.arange(layer.num_embeddings), [layer.padding])
        return rng.choice(rows, shape)
    if isinstance(layer, (L.ReLU, L.MaxPool1D, L.MaxPool2D)):
        values = rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape) - 0.5
        return values + np.sign(values) * 0.05
    return rng.standard_normal(shape)


def torch_counterpart(layer):
    """A torch module computing what ``layer`` computes, with ``layer``'s weights, and an output picker."""
    import torch
    from torch import nn

    pick = lambda out: out  # noqa: E731
    if isinstance(layer, L.Frozen):
        return _frozen_counterpart(layer), pick
    if isinstance(layer, L.Residual):
        return _residual_counterpart(layer), pick
    if isinstance(layer, L.MultiHeadAttention):
        return _attention_counterpart(layer), pick
    if isinstance(layer, L.PositionalEmbedding):
        module = _positional_counterpart(layer)
    elif isinstance(layer, L.GlobalAvgPool1D):
        module = _mean_over_tokens()
    elif isinstance(layer, L.Embedding):
        module = nn.Embedding(layer.num_embeddings, layer.embedding_dim,
                              padding_idx=None if layer.padding < 0 else layer.padding)
    elif isinstance(layer, L.Dense):
        module = nn.Linear(layer.in_features, layer.out_features, bias=layer.use_bias)
    elif isinstance(layer, L.ConvTranspose2D):
        module = nn.ConvTranspose2d(layer.in_channels, layer.out_channels, layer.kernel, layer.strides,
                                    layer.paddings, layer.output_paddings, bias=layer.use_bias)
    elif isinstance(layer, L.Upsample2D):
        module = nn.Upsample(scale_factor=layer.scale_factor, mode="nearest")
    elif isinstance(layer, L.GlobalAvgPool2D):
        module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
    elif isinstance(layer, (L.Conv1D, L.Conv2D)):
        cls = nn.Conv2d if isinstance(layer, L.Conv2D) else nn.Conv1d
        module = cls(layer.in_channels, layer.out_channels, layer.kernel, layer.strides, layer.paddings,
                     bias=layer.use_bias)
    elif isinstance(layer, L.MaxPool2D):
        module = nn.MaxPool2d(layer.kernel_size, layer.stride)
    elif isinstance(layer, L.MaxPool1D):
        module = nn.MaxPool1d(layer.kernel_size, layer.stride)
    elif isinstance(layer, L.AvgPool2D):
        module = nn.AvgPool2d(layer.kernel_size, layer.stride)
    elif isinstance(layer, (L.ReLU, L.Sigmoid, L.Tanh, L.SiLU, L.Flatten)):
        module = {L.ReLU: nn.ReLU, L.Sigmoid: nn.Sigmoid, L.Tanh: nn.Tanh, L.SiLU: nn.SiLU,
                  L.Flatten: nn.Flatten}[type(layer)]()
    elif isinstance(layer, L.GELU):
        module = nn.GELU(approximate=layer.approximate)
    elif isinstance(layer, (L.LSTM, L.GRU)):
        cls = nn.LSTM if isinstance(layer, L.LSTM) else nn.GRU
        module = cls(layer.input_size, layer.hidden_size, batch_first=True)
        pick = (lambda out: out[0]) if layer.return_sequences else (lambda out: out[0][:, -1])
    elif isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)):
        cls = nn.BatchNorm1d if isinstance(layer, L.BatchNorm1D) else nn.BatchNorm2d
        module = cls(layer.num_features, layer.eps, layer.momentum)
    elif isinstance(layer, L.LayerNorm):
        module = nn.LayerNorm(layer.normalized_shape, layer.eps, layer.elementwise_affine, bias=layer.use_bias)
    else:
        return None, None
    dtype = getattr(torch, np.dtype(layer.dtype).name)
    module = module.to(dtype)
    with torch.no_grad():
        for name, value in module.named_parameters():
            key = name[:-3] if name.endswith("_l0") else name
            value.copy_(torch.from_numpy(np.ascontiguousarray(layer.params[key])))
        for name, value in module.named_buffers():  # running statistics
            if name in layer.buffers:
                value.copy_(torch.from_numpy(np.asarray(layer.buffers[name]).reshape(value.shape)))
    return module, pick


def _frozen_counterpart(layer):
    """A frozen Sequential (of layers whose torch output needs no picking) as torch freezes a feature
    extractor: the input detached, the parameters without gradients."""
    import torch
    from torch import nn

    inner = layer.extractor.layers
    dtype = getattr(torch, np.dtype(inner[0].dtype).name)  # the extractor keeps its own dtype

    class Detach(nn.Module):
        def forward(self, x):
            return x.detach().to(dtype)

    return nn.Sequential(Detach(), *(torch_counterpart(part)[0] for part in inner)).requires_grad_(False)


def _residual_counterpart(layer):
    """``body(x) + shortcut(x)`` with torch's counterparts of the block's layers (named as the block's
    parameters: ``body.<i>.<name>``, ``shortcut.<i>.<name>``); None when a child has no counterpart."""
    from torch import nn

    class TorchResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(*(torch_counterpart(part)[0] for part in layer.body))
            self.shortcut = None if layer.shortcut is None else \
                nn.Sequential(*(torch_counterpart(part)[0] for part in layer.shortcut))

        def forward(self, x):
            return self.body(x) + (x if self.shortcut is None else self.shortcut(x))

    if any(torch_counterpart(part)[0] is None for part in layer.body + (layer.shortcut or [])):
        return None
    return TorchResidual()


def _attention_counterpart(layer):
    """``torch.nn.MultiheadAttention(batch_first=True)`` on ``(x, x, x)`` with ``need_weights=False`` (and
    the upper-triangular boolean ``attn_mask`` when causal), with ``layer``'s weights; its parameters
    are exposed under the layer's names (``out_proj_weight`` for torch's ``out_proj.weight`` ...)."""
    import torch
    from torch import nn

    dtype = getattr(torch, np.dtype(layer.dtype).name)
    attention = nn.MultiheadAttention(layer.embed_dim, layer.num_heads, dropout=layer.dropout, bias=layer.use_bias,
                                      batch_first=True, dtype=dtype)
    names = {"in_proj_weight": attention.in_proj_weight, "in_proj_bias": attention.in_proj_bias,
             "out_proj_weight": attention.out_proj.weight, "out_proj_bias": attention.out_proj.bias}
    with torch.no_grad():
        for name, value in layer.params.items():
            names[name].copy_(torch.from_numpy(np.ascontiguousarray(value)))

    class TorchAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = attention
            for name, value in names.items():  # the same Parameter objects, under the layer's names (listed
                if value is not None:          # first, so named_parameters gives these names only)
                    self.register_parameter(name, value)

        def forward(self, x):
            size = x.shape[1]
            mask = torch.triu(torch.ones(size, size, dtype=torch.bool), 1) if layer.causal else None
            return self.attention(x, x, x, need_weights=False, attn_mask=mask)[0]

    return TorchAttention()
def _positional_counterpart(layer):
    """``x + weight[:T]`` with a learned ``weight`` (max_len, dim): GPT-2's position embedding."""
    import torch
    from torch import nn

    class TorchPositional(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(layer.max_len, layer.dim))

        def forward(self, x):
            return x + self.weight[:x.shape[1]]

    return TorchPositional()


def _mean_over_tokens():
    """``x.mean(dim=1)``: (N, T, D) -> (N, D)."""
    from torch import nn

    class MeanOverTokens(nn.Module):
        def forward(self, x):
            return x.mean(dim=1)

    return MeanOverTokens()
