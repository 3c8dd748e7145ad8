"""The training images of a run: decoded (cached in memory or on disk, or streamed), and
served as batches in a seeded order, epoch by epoch, resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Subset

from fakescope.config import Recipe, TrainConfig
from fakescope.data.cache import DecodedSet, StreamingDataset, load_or_decode
from fakescope.data.format_neutral import JpegReencoder, real_jpeg_qualities
from fakescope.data.multi_source import MultiSource, sampling_weights
from fakescope.data.sources import Item, Source
from fakescope.data.transforms import Preprocessing, native_sides
from fakescope.errors import ConfigError
from fakescope.faces import FaceSelector
from fakescope.training.distributed import DistContext
from fakescope.training.schedule import epoch_generator


class TrainingData:
    """The data half of `Trainer` (training/loop.py): `_load_data` decodes the training and
    validation images, `_batches` yields an epoch's batches from a given step."""

    recipe: Recipe
    cfg: TrainConfig
    source: Source
    dist: DistContext
    pre: Preprocessing
    faces: FaceSelector | None
    progress: bool
    train_items: list[Item]
    val_items: list[Item]
    degrade_native: bool  # the recipe degrades images at their native resolution

    def _decode(self, items: list[Item], desc: str, *, reencode: bool = False) -> DecodedSet:
        """`reencode`: read through the format-neutralising re-encoder (training images)."""
        if self.recipe.data.cache == "disk":  # process 0 fills the shared cache, others map it
            return self.dist.main_first(lambda: self._load_or_decode(items, desc, reencode))
        return self._load_or_decode(items, desc, reencode)

    def _load_or_decode(self, items: list[Item], desc: str, reencode: bool) -> DecodedSet:
        read_bytes: Callable[[Item], bytes] = self.source.read_bytes
        fingerprint = self.source.fingerprint()
        if reencode and self.reencoder is not None:
            read_bytes = self.reencoder
            fingerprint += "|" + self.reencoder.describe()
        return load_or_decode(
            items,
            read_bytes,
            self.pre,
            fingerprint=fingerprint,
            mode="disk" if self.recipe.data.cache == "disk" else "memory",
            cache_dir=self.recipe.data.cache_dir,
            progress=self.progress,
            desc=desc,
            faces=self.faces,
        )

    def _train_reencoder(self) -> JpegReencoder | None:
        """Format neutralisation (`augment.reencode`): the training images' reader that
        re-encodes non-JPEG files at the training reals' JPEG qualities."""
        if self.recipe.data.augment.reencode == "none":
            return None
        read = self.source.read_bytes
        qualities = real_jpeg_qualities(self.train_items, read, seed=self.cfg.seed)
        return JpegReencoder(read, qualities, seed=self.cfg.seed)

    def _load_data(self) -> None:
        self.skipped: list[tuple[str, str]] = []
        self.reencoder = self._train_reencoder()
        if self.recipe.data.cache == "none":
            self.train_set = None
            self.stream = StreamingDataset(
                self.train_items, self.reencoder or self.source.read_bytes, self.pre, self.faces
            )
            self.n_train = len(self.train_items)
            labels = [it.label for it in self.train_items]  # None (unlabelled) fails here
            self.train_labels = torch.tensor(labels, dtype=torch.float32)
        else:
            self.train_set = self._decode(self.train_items, "decode train", reencode=True)
            self.skipped += self.train_set.skipped
            self.n_train = len(self.train_set)
            self.train_labels = self.train_set.labels
        self.train_sides = self._native_sides()  # before any training step: may refuse
        self.val_set = self._decode(self.val_items, "decode val")
        self.skipped += self.val_set.skipped
        if self.n_train == 0 or len(self.val_set) == 0:
            raise ConfigError("no readable training or validation images left")
        self.sample_probabilities = self._sample_probabilities()

    def _sample_probabilities(self) -> torch.Tensor | None:
        """Per training image, the chance to be drawn, when several weighted sources are
        combined (None: every image once per epoch, in a shuffled order)."""
        if not isinstance(self.source, MultiSource):
            return None
        by_path = {it.path: it.source for it in self.train_items}
        paths = (
            self.train_set.paths
            if self.train_set is not None
            else [it.path for it in self.train_items]
        )
        weights = sampling_weights([by_path.get(p) for p in paths], self.source.weights())
        return torch.from_numpy(weights)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        """The images of epoch `epoch`, in order: a permutation, or with weighted sources as
        many draws (with replacement) by the sources' weights."""
        generator = epoch_generator(self.cfg.seed, epoch, 0)
        if self.sample_probabilities is None:
            return torch.randperm(self.n_train, generator=generator)
        return torch.multinomial(
            self.sample_probabilities, self.n_train, replacement=True, generator=generator
        )

    def _steps_per_epoch(self) -> int:
        bs = self.cfg.batch_size
        return max(1, self.n_train // bs) if self.n_train > bs else 1

    def _native_sides(self) -> torch.Tensor | None:
        """Per training image, its own shorter side where preprocessing enlarges it (else 0),
        for degradations at native resolution; None when the recipe degrades at input size."""
        if not self.degrade_native or self.train_set is None:
            return None
        if self.train_set.sizes is None:
            raise ConfigError(
                "augment.degrade.at 'native' needs the images' sizes, which this disk cache "
                "predates: delete it (data.cache_dir, or ~/.cache/fakescope) to decode again"
            )
        return native_sides(self.train_set.sizes, self.pre.input_size)

    def _batches(
        self, epoch: int, start: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """Training batches of epoch `epoch` from step `start`, in a seeded order, each with
        its images' native shorter sides (`train_sides`) or None."""
        bs = min(self.cfg.batch_size, self.n_train)
        order = self._epoch_order(epoch)
        steps = self._steps_per_epoch()
        if self.train_set is not None:
            sides = self.train_sides
            for step in range(start, steps):
                index = order[step * bs : (step + 1) * bs]
                yield (
                    self.train_set.images[index],
                    self.train_set.labels[index],
                    None if sides is None else sides[index],
                )
            return
        subset = Subset(self.stream, order[start * bs : steps * bs].tolist())
        loader = DataLoader(subset, batch_size=bs, num_workers=self.recipe.data.workers)
        for images, labels in loader:
            keep = labels >= 0
            yield images[keep], labels[keep].float(), None
