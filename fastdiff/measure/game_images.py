"""The images of the fool-rate game (`fastdiff.measure.foolrate`): folders of real, generated and low-res
images (``real/``, ``generated/`` or ``generated/<model>/``, optional ``lr/``), matched by file name and checked
for matching sizes; writing SR outputs into that layout; and the offline demo material."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import IMAGE_SUFFIXES, pil_to_array, to_uint8
from ..files import atomic_write


class GameDataError(ValueError):
    """The image folders cannot be played: missing, empty, mismatched names or sizes. The message says which."""


# ----------------------------------------------------------------------------------------------- image folders

def _image_files(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise GameDataError(f"{what} folder {folder} does not exist")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
            continue
        if path.stem in files:
            raise GameDataError(f"{what} folder {folder} has two images named {path.stem!r}: "
                                f"{files[path.stem].name} and {path.name}")
        files[path.stem] = path
    if not files:
        raise GameDataError(f"{what} folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise GameDataError(f"cannot read image {path}: {e}") from e


def _describe(names: set[str], limit: int = 5) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass
class GameSources:
    """The folders a game is played on. ``models`` maps a model name to its folder of generated images; every
    folder holds one image per name (file stem), and the real and generated images of a name share one size."""
    real: dict[str, Path]
    models: dict[str, dict[str, Path]]
    lr: dict[str, Path] | None
    names: list[str]

    @classmethod
    def from_folders(cls, real: str | Path, generated: str | Path | dict[str, str | Path],
                     lr: str | Path | None = None) -> "GameSources":
        """``generated`` is one folder (model name: the folder's name), a folder whose sub-folders are the models
        (``generated/<model>/``), or a dict {model: folder}. Each generated folder must hold exactly the names of
        ``real`` (file extensions may differ); ``lr`` (optional) too, with images smaller than the real ones."""
        real_files = _image_files(Path(real), "real")
        if isinstance(generated, dict):
            model_dirs = {str(m): Path(d) for m, d in generated.items()}
        else:
            generated = Path(generated)
            subdirs = sorted(p for p in generated.iterdir() if p.is_dir()) if generated.is_dir() else []
            model_dirs = {p.name: p for p in subdirs} or {generated.name: generated}
        if not model_dirs:
            raise GameDataError("no generated folders given")
        models = {m: _image_files(d, f"generated ({m})") for m, d in model_dirs.items()}
        lr_files = _image_files(Path(lr), "lr") if lr else None

        names = set(real_files)
        for what, files in [*((f"generated ({m})", f) for m, f in models.items()), ("lr", lr_files)]:
            if files is None:
                continue
            if set(files) != names:
                missing, extra = names - set(files), set(files) - names
                raise GameDataError(
                    f"the {what} folder does not match real/ name for name: "
                    + (f"missing {_describe(missing)}" if missing else "")
                    + ("; " if missing and extra else "") + (f"not in real/: {_describe(extra)}" if extra else ""))
        for name in sorted(names):
            size = _image_size(real_files[name])
            for m, files in models.items():
                if (s := _image_size(files[name])) != size:
                    raise GameDataError(f"{name}: the real image is {size[0]}x{size[1]} but the {m} image "
                                        f"{files[name].name} is {s[0]}x{s[1]}; candidates must have one size")
            if lr_files is not None:
                w, h = _image_size(lr_files[name])
                if w >= size[0] or h >= size[1]:
                    raise GameDataError(f"{name}: the lr image is {w}x{h}, not smaller than the real {size[0]}x{size[1]}")
        return cls(real=real_files, models=models, lr=lr_files, names=sorted(names))

    def load(self, kind: str, name: str, model: str | None = None):
        """One image as a PIL RGB image; ``kind`` is "real", "generated" (with ``model``) or "lr"."""
        from PIL import Image
        files = {"real": self.real, "lr": self.lr, "generated": self.models.get(model or "")}.get(kind)
        if files is None:
            raise KeyError(f"no {kind} images" + (f" for model {model!r}" if model else ""))
        with Image.open(files[name]) as im:
            return Image.fromarray(pil_to_array(im, 3))


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write one image in [-1, 1], (C, H, W), as an 8-bit PNG (atomically: a game never shows half an image)."""
    from PIL import Image
    array = to_uint8(image).permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    return atomic_write(path, lambda f: picture.save(f, format="PNG"))


def write_game_folders(root: str | Path, real: torch.Tensor, generated: dict[str, torch.Tensor],
                       lr: torch.Tensor | None = None, *, names: list[str] | None = None) -> Path:
    """Write tensors (N, C, H, W) in [-1, 1] into the layout `GameSources.from_folders` reads:
    ``root/real/<name>.png``, ``root/generated/<model>/<name>.png`` and ``root/lr/<name>.png``."""
    root = Path(root)
    names = names or [f"{i:04d}" for i in range(len(real))]
    for model, images in generated.items():
        if images.shape != real.shape:
            raise GameDataError(f"model {model!r}: generated images {tuple(images.shape)} do not match "
                                f"the real images {tuple(real.shape)}")
    for i, name in enumerate(names):
        save_image(real[i], root / "real" / f"{name}.png")
        for model, images in generated.items():
            save_image(images[i], root / "generated" / model / f"{name}.png")
        if lr is not None:
            save_image(lr[i], root / "lr" / f"{name}.png")
    return root


def demo_folders(root: str | Path, *, n: int = 24, patch_size: int = 64, scale: int = 4, seed: int = 0) -> Path:
    """Offline demo material in the game's layout: ``n`` real photo patches (scikit-image's bundled photos),
    their antialiased-bicubic LR images, and two classical upscalings of the LR as the "generated" candidates,
    ``bicubic`` and ``nearest``. These are interpolation baselines, not diffusion outputs; study 01 writes its
    SR models' outputs in the same layout."""
    import torch.nn.functional as F
    from ..data import downsample, photo_patches
    patches = photo_patches(patch_size)
    textured = torch.nonzero(patches.std(dim=(1, 2, 3)) > 0.15).flatten()  # skip flat sky and empty space
    if len(textured) < n:
        raise GameDataError(f"only {len(textured)} textured {patch_size}x{patch_size} photo patches; ask for fewer")
    pick = textured[torch.randperm(len(textured), generator=torch.Generator().manual_seed(seed))[:n]]
    real = patches[pick]
    lr = downsample(real, scale)
    generated = {mode: F.interpolate(lr, scale_factor=scale, mode=mode).clamp(-1, 1) for mode in ("bicubic", "nearest")}
    return write_game_folders(root, real, generated, lr, names=[f"photo{int(i):03d}" for i in pick])


def game_sources(*, game_dir: str = "", real_dir: str = "", generated_dir: str = "", lr_dir: str = "",
                 demo_root: str | Path = "demo", demo_images: int = 24, seed: int = 0) -> tuple[GameSources, str]:
    """The notebook's choice of images, with a line saying where they came from: ``game_dir`` in the layout
    `write_game_folders` writes (``real/``, ``generated/<model>/``, optional ``lr/``; study 01 writes its outputs
    so), else the three folders given one by one, else the offline demo (`demo_folders`) under ``demo_root``."""
    if game_dir:
        root = Path(game_dir)
        lr = root / "lr"
        sources = GameSources.from_folders(root / "real", root / "generated", lr if lr.is_dir() else None)
        return sources, f"folders under {root}"
    if real_dir or generated_dir:
        if not (real_dir and generated_dir):
            raise GameDataError("give both real_dir and generated_dir (lr_dir is optional), or game_dir, "
                                "or none of them for the offline demo")
        return GameSources.from_folders(real_dir, generated_dir, lr_dir or None), \
            f"real {real_dir}, generated {generated_dir}" + (f", lr {lr_dir}" if lr_dir else "")
    root = demo_folders(demo_root, n=demo_images, seed=seed)
    return GameSources.from_folders(root / "real", root / "generated", root / "lr"), (
        f"offline demo: {demo_images} 64x64 patches of scikit-image's bundled photos (real), 16x16 LR by "
        f"antialiased bicubic; candidates are bicubic and nearest-neighbour upscalings (interpolation baselines, "
        f"not diffusion models)")
