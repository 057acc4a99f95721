"""The pretrained feature extractors ctqc loads from local weight files (``qc.weights.<name>``), never downloaded.

One table, read by the config (to name the expected file in its errors), the extractors
(:mod:`ctqc.qc.extractors`) and the docs (docs/feature-spaces.md).
"""

from __future__ import annotations

#: name → the file it expects (what ``qc.weights.<name>`` must point at)
PRETRAINED_WEIGHTS: dict[str, str] = {
    "clip-vit-b-32": "OpenAI CLIP's TorchScript file ViT-B-32.pt",
    "clip-vit-l-14-336px": "OpenAI CLIP's TorchScript file ViT-L-14-336px.pt",
    "dinov2-vits14": "the DINOv2 state dict dinov2_vits14_pretrain.pth (torch.save of a dict of tensors)",
    "dinov2-vitb14": "the DINOv2 state dict dinov2_vitb14_pretrain.pth (torch.save of a dict of tensors)",
    "swav-resnet50": "the SwAV state dict swav_800ep_pretrain.pth.tar (torch.save of a dict of tensors, 'module.' prefixes)",
}
PRETRAINED = tuple(PRETRAINED_WEIGHTS)
CMMD_EXTRACTOR = "clip-vit-l-14-336px"  # CMMD's own embedding (Jayasumana et al. 2024)
METRIC_EXTRACTORS = ("inception", "inception-bf16", "domain", *PRETRAINED)
