"""Two PyTorch ports of ``examples/keras_cnn.py``, side B of the README's worked ``compare``.

``faithful`` is the port as it should be written: BatchNorm with Keras's ε = 1e-3 and its
momentum 0.99 turned into torch's 1 − 0.99 = 0.01, TensorFlow's "same" split at stride 2 (the odd
row and column at the bottom and right: ``nn.ZeroPad2d((0, 1, 0, 1))``), the maps flattened
channels-last as Keras flattens them, Adam with Keras's ε = 1e-7. ``two_mistakes`` makes the two
classic slips: Keras's momentum 0.99 copied as torch's momentum (ρ = 0.01) and ``padding=1`` on the
stride-2 convolution (one row and column on every side). Neither side brings weights here:
``compare`` loads the Keras model's into the port.
"""

import torch
from torch import nn


class Port(nn.Module):
    def __init__(self, momentum: float, stride_two_padding: nn.Module):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.norm = nn.BatchNorm2d(8, eps=1e-3, momentum=momentum)
        self.pool = nn.MaxPool2d(2)
        self.pad = stride_two_padding
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2)
        self.dense = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.norm(self.conv1(x))))
        x = torch.relu(self.conv2(self.pad(x)))
        return self.dense(x.permute(0, 2, 3, 1).flatten(1))       # Keras flattens (H, W, C)


def _side(model: nn.Module) -> dict:
    return {"model": model, "loss": nn.CrossEntropyLoss(),
            "optimizer": lambda parameters: torch.optim.Adam(parameters, lr=1e-3, eps=1e-7)}


def faithful() -> dict:
    return _side(Port(momentum=0.01, stride_two_padding=nn.ZeroPad2d((0, 1, 0, 1))))


def two_mistakes() -> dict:
    return _side(Port(momentum=0.99, stride_two_padding=nn.ZeroPad2d(1)))
