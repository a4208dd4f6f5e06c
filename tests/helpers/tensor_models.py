"""Small modules of tensor inputs, as users bring them: an image classifier (Conv2d) and a
sensor-window classifier (Conv1d over 6 IMU channels), with their example batches."""
import torch
import torch.nn as nn


class SmallCNN(nn.Module):
    """images [B, 1, 16, 16] -> logits [B, classes]."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, classes)

    def forward(self, images):
        h = torch.relu(self.conv2(torch.relu(self.conv1(images))))
        return self.fc(h.mean(dim=(2, 3)))


class SensorNet(nn.Module):
    """windows [B, 6, 64] (accelerometer and gyroscope, 64 samples) -> logits [B, classes]."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.conv1 = nn.Conv1d(6, 16, 5, padding=2)
        self.conv2 = nn.Conv1d(16, 16, 3, padding=2, dilation=2)
        self.fc = nn.Linear(16, classes)

    def forward(self, windows):
        return self.fc(torch.relu(self.conv2(torch.relu(self.conv1(windows)))).mean(dim=2))


def image_batch(n: int = 8, classes: int = 4, seed: int = 0) -> tuple[dict, dict]:
    """Images whose class is which quadrant is bright -> ({"images"}, {"labels"})."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = torch.randn(n, 1, 16, 16, generator=g) * 0.3
    for i, c in enumerate(labels.tolist()):
        r, col = divmod(c, 2)
        images[i, 0, 8 * r:8 * r + 8, 8 * col:8 * col + 8] += 1.0
    return {"images": images}, {"labels": labels}


def sensor_batch(n: int = 8, classes: int = 5, seed: int = 0) -> tuple[dict, dict]:
    """Windows whose class sets the frequency of a sine on every channel -> ({"windows"}, {"labels"})."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    t = torch.arange(64, dtype=torch.float32)
    phase = torch.rand(n, 6, 1, generator=g) * 6.28
    windows = torch.sin((labels[:, None, None] + 1) * 0.2 * t + phase) + 0.1 * torch.randn(n, 6, 64, generator=g)
    return {"windows": windows}, {"labels": labels}
