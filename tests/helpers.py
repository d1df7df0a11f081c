"""Small synthetic stores shared by tests (no simulator, no network), test images (``scene``), headless Chromium,
and the import of the imagecorruptions reference (also used by bench/corrupt.py).

``moving_square_store`` draws a coloured square that moves by the commanded translation, so the action
is exactly recoverable from two consecutive frames; ``noise_store`` has targets independent of frames.
"""
from __future__ import annotations

import numpy as np

from wmprobe.data.store import EpisodeStore, from_episodes

ACTION_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
GROUPS = {"translation": [0, 1, 2], "rotation": [3, 4, 5], "gripper": [6]}


def moving_square_store(episodes: int = 12, steps: int = 24, size: int = 32, tasks: int = 4,
                        seed: int = 0, states: bool = False) -> EpisodeStore:
    """Frames (T, size, size, 3): a square at (x, y) with brightness z; a_t moves o_t -> o_{t+1}.
    ``states``: also per-frame proprioceptive states ``(x, y, z, gripper)``: the square's position and the
    gripper command in force (the previous one; 0 at the start), so the state of o_t and o_{t+k} gives the
    translation and gripper targets exactly and nothing of the (invisible) rotation."""
    rng = np.random.default_rng(seed)
    eps, task_ids, state_eps = [], [], []
    for e in range(episodes):
        x, y, z = rng.uniform(2, size - 8), rng.uniform(2, size - 8), rng.uniform(0.4, 0.8)
        colour = np.array([1.0, 0.3 + 0.1 * (e % tasks), 0.2])
        frames = np.zeros((steps, size, size, 3), np.uint8)
        actions = np.zeros((steps, 7), np.float32)
        state = np.zeros((steps, 4), np.float32)
        for t in range(steps):
            state[t] = [x, y, z, actions[t - 1, 6] if t else 0.0]
            img = np.full((size, size, 3), 30, np.float32)
            ix, iy = int(round(x)), int(round(y))
            img[iy:iy + 5, ix:ix + 5] = 255 * z * colour
            frames[t] = np.clip(img, 0, 255).astype(np.uint8)
            d = rng.integers(-2, 3, size=2)
            d = np.where((np.array([x, y]) + d < 2) | (np.array([x, y]) + d > size - 8), -d, d)
            dz = rng.choice([-0.05, 0.0, 0.05]) if 0.3 < z < 0.9 else (0.05 if z <= 0.3 else -0.05)
            actions[t, :3] = [d[0], d[1], dz]
            actions[t, 3:6] = rng.normal(0, 0.01, 3)  # rotation not visible: a hard axis on purpose
            actions[t, 6] = float(t % 8 < 4)
            x, y, z = x + d[0], y + d[1], z + dz
        eps.append((frames, actions))
        state_eps.append(state)
        task_ids.append(e % tasks)
    extra = {"states": state_eps, "state_names": ["x", "y", "z", "gripper"]} if states else {}
    return from_episodes(eps, task_ids, fps=10, action_names=ACTION_NAMES, action_groups=GROUPS,
                         task_names=[f"task{i}" for i in range(tasks)], source={"kind": "synthetic"},
                         name="moving-square", **extra)


def write_tiny_store(path, **kw) -> EpisodeStore:
    store = moving_square_store(**kw)
    store.save(path)
    return EpisodeStore.load(path)


# ---- headless Chromium ----------------------------------------------------------------------------------------------
def chromium() -> str | None:
    import shutil
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium_check(report, tmp_path) -> dict:
    """Open ``report`` (an HTML path) in headless Chromium with ``#selftest`` and return the page's verdict
    (errors, figures, broken, blank, sorted) plus ``shot``: a full-page screenshot as an (H, W, 3) array."""
    import json
    import re
    import subprocess

    import matplotlib.image as mpimg
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000"]
    url = report.resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url + "#selftest"], capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="selftest"[^>]*>(.*?)</pre>', dom.stdout, re.S)
    assert m, f"self-test did not run: {dom.stderr[-800:]}"
    verdict = json.loads(m.group(1).replace("&quot;", '"'))
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1280,2400", url], capture_output=True,
                   timeout=120)
    verdict["shot"] = mpimg.imread(shot)[..., :3]
    return verdict


# ---- test images (the corruption and fidelity tests) -----------------------------------------------------------
def scene(n: int, h: int = 64, seed: int = 0) -> np.ndarray:
    """``(n, h, h, 3) uint8`` smooth colour gradients with a few flat discs (edges and smooth areas)."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:h] / h
    out = []
    for _ in range(n):
        img = np.stack([0.35 + 0.25 * np.sin(2 * np.pi * (r.uniform(0.5, 2) * xx + r.uniform(0.5, 2) * yy)
                                             + r.uniform(0, 6)) for _ in range(3)], -1)
        for _ in range(5):
            cx, cy, rad = r.uniform(0, 1), r.uniform(0, 1), r.uniform(0.08, 0.2)
            img[(xx - cx) ** 2 + (yy - cy) ** 2 < rad ** 2] = r.uniform(0.05, 0.95, 3)
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


# ---- the imagecorruptions reference ---------------------------------------------------------------------------
def import_imagecorruptions():
    """``import imagecorruptions`` (ImportError where it is not installed). Version 1.1.2 imports
    ``pkg_resources.resource_filename``, gone from setuptools >= 81: a stand-in serves that import only and is
    taken out of ``sys.modules`` again (pytest's monkeypatch treats a present pkg_resources as the real one)."""
    import importlib
    import os
    import sys
    import types
    try:
        import pkg_resources  # noqa: F401
    except ImportError:
        mod = types.ModuleType("pkg_resources")
        mod.resource_filename = lambda module, name: os.path.join(os.path.dirname(sys.modules[module].__file__),
                                                                  name)
        sys.modules["pkg_resources"] = mod
        try:
            return importlib.import_module("imagecorruptions")
        finally:
            sys.modules.pop("pkg_resources", None)
    return importlib.import_module("imagecorruptions")
