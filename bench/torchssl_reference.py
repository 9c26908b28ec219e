#!/usr/bin/python3
"""Train FixMatch and MixMatch as TorchSSL does, at the reference profile's budget, on semisup's data.

This is a re-implementation of TorchSSL's CIFAR-10 training loop for the two
algorithms, written from these TorchSSL files (github.com/TorchSSL/TorchSSL):
fixmatch.py and mixmatch.py (entry points: seeding, optimizer, scheduler,
loaders), models/fixmatch/fixmatch.py, models/fixmatch/fixmatch_utils.py,
models/mixmatch/mixmatch.py, models/mixmatch/mixmatch_utils.py,
train_utils.py (get_optimizer, get_cosine_schedule_with_warmup, EMA,
Bn_Controller, ce_loss), models/nets/wrn.py, datasets/ssl_dataset.py,
datasets/dataset.py, datasets/data_utils.py, datasets/DistributedProxySampler.py,
datasets/augmentation/randaugment.py and config/{fixmatch,mixmatch}/
{fixmatch,mixmatch}_cifar10_4000_0.yaml. It is not TorchSSL's code, and it
runs on the CPU.

The model is bench/pytorch_wrn.py's WideResNet-28-2, which builds and
initialises its layers in the order of TorchSSL's models/nets/wrn.py. The data
are semisup's own artifacts: the train and test images of a download artifact
and the labeled indices of the split artifact for the requested label count
and seed. As in TorchSSL, the unlabeled set is all 50,000 training images,
labeled ones included.

Each algorithm runs `num_train_iter` iterations (100 for FixMatch and 300 for
MixMatch by default), and the cosine learning rate and MixMatch's lambda_u
ramp-up span that count. After the last iteration the EMA model and the raw
model are evaluated in eval mode on all 10,000 test images.

Known differences from a TorchSSL run of the same budget:
- One `train()` call. TorchSSL's configs set `epoch: 1024`, so its entry
  points call `train()` 1024 times, and each call re-registers the EMA from the
  current weights. The second call also runs one extra iteration, because the
  loop stops only when `it > num_train_iter`. Here the EMA covers exactly
  `num_train_iter` iterations.
- CPU, float32, one process, no DistributedDataParallel or SyncBatchNorm (with
  one GPU these compute the same as plain BatchNorm2d but with other kernels).
- Sampling: a torch RandomSampler with replacement over `batch * iterations`
  draws per loader, as TorchSSL's get_data_loader builds it, but each loader
  has its own generator seeded from `--seed`. TorchSSL passes no generator,
  and in its default distributed mode DistributedProxySampler calls
  `torch.manual_seed(epoch)` before drawing, so both of its loaders draw from
  the same seed.
- Augmentation runs in the main process (DataLoader num_workers 0) on the
  global `random`, NumPy and torch generators seeded from `--seed`, not in
  worker processes with their own seeds. The random streams therefore differ
  from TorchSSL's, and so do the mixup draws that share them.
- The labeled set is semisup's split (sorted indices), not TorchSSL's
  `np.random.choice` draw per class.
- No evaluations during training. TorchSSL evaluates at iteration 0 and every
  `num_eval_iter`, which changes no weights but does advance random streams.

stdout gets one JSON object per algorithm, one per line, and `--out FILE`
writes the same lines. Progress goes to stderr. Invalid flags exit with
status 2, and missing or ambiguous artifacts with status 1.

Example:
    /usr/bin/python3 bench/torchssl_reference.py --iterations-fixmatch 2 --iterations-mixmatch 3
"""

import argparse
import copy
import hashlib
import json
import math
import os
import random
import sys
import time

import numpy as np
import PIL
import PIL.ImageDraw
import PIL.ImageEnhance
import PIL.ImageOps
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler
from torchvision import transforms

from pytorch_wrn import (
    EXPECTED_PARAMETERS,
    WideResNet,
    algorithm_list,
    build_optimizer,
    count_parameters,
    frozen_bn_statistics,
    interleave,
    non_negative_int,
    positive_int,
)

ALGORITHMS = ("fixmatch", "mixmatch")
NUM_CLASSES = 10

# datasets/ssl_dataset.py: CIFAR-10 mean and std, crop size 32 with padding int(32 * 0.125) = 4.
CIFAR10_MEAN = [x / 255 for x in [125.3, 123.0, 113.9]]
CIFAR10_STD = [x / 255 for x in [63.0, 62.1, 66.7]]
CROP_SIZE = 32
CROP_PADDING = int(CROP_SIZE * 0.125)

# config/fixmatch/fixmatch_cifar10_4000_0.yaml and config/mixmatch/mixmatch_cifar10_4000_0.yaml.
# The optimizer (lr 0.03, momentum 0.9, Nesterov, weight decay 5e-4 without BN and biases),
# BN momentum 0.001 and LeakyReLU 0.1 come with bench/pytorch_wrn.py's model and build_optimizer.
BATCH_SIZE = 64
EVAL_BATCH_SIZE = 1024
EMA_DECAY = 0.999
COSINE_CYCLES = 7 / 16
FIXMATCH = {"uratio": 7, "p_cutoff": 0.95, "lambda_u": 1.0, "hard_label": True, "T": 0.5}
MIXMATCH = {"uratio": 1, "alpha": 0.5, "T": 0.5, "lambda_u": 100.0, "ramp_up": 0.4}

# Means over the last iterations of the run, as docs/reference_run.md reports them.
LAST_ITERATIONS = 20


class ArtifactError(Exception):
    """A missing, corrupt or ambiguous semisup artifact."""


# --- TorchSSL's RandAugment (datasets/augmentation/randaugment.py) -----------------------------


def _auto_contrast(img, _):
    return PIL.ImageOps.autocontrast(img)


def _brightness(img, v):
    return PIL.ImageEnhance.Brightness(img).enhance(v)


def _color(img, v):
    return PIL.ImageEnhance.Color(img).enhance(v)


def _contrast(img, v):
    return PIL.ImageEnhance.Contrast(img).enhance(v)


def _equalize(img, _):
    return PIL.ImageOps.equalize(img)


def _identity(img, _):
    return img


def _posterize(img, v):
    return PIL.ImageOps.posterize(img, max(1, int(v)))


def _rotate(img, v):
    return img.rotate(v)


def _sharpness(img, v):
    return PIL.ImageEnhance.Sharpness(img).enhance(v)


def _shear_x(img, v):
    return img.transform(img.size, Image.Transform.AFFINE, (1, v, 0, 0, 1, 0))


def _shear_y(img, v):
    return img.transform(img.size, Image.Transform.AFFINE, (1, 0, 0, v, 1, 0))


def _solarize(img, v):
    return PIL.ImageOps.solarize(img, v)


def _translate_x(img, v):
    return img.transform(img.size, Image.Transform.AFFINE, (1, 0, v * img.size[0], 0, 1, 0))


def _translate_y(img, v):
    return img.transform(img.size, Image.Transform.AFFINE, (1, 0, 0, 0, 1, v * img.size[1]))


def cutout(img, v):
    """Paint a gray square of side `v * width` pixels, as TorchSSL's Cutout and CutoutAbs do.

    The centre comes from `np.random.uniform(w)`, which is uniform on (1, w]
    because NumPy reads the single argument as `low` with `high` 1.0. The
    square is clipped at the image border.
    """
    if v <= 0.0:
        return img
    v = v * img.size[0]
    w, h = img.size
    x0 = np.random.uniform(w)
    y0 = np.random.uniform(h)
    x0 = int(max(0, x0 - v / 2.0))
    y0 = int(max(0, y0 - v / 2.0))
    x1 = min(w, x0 + v)
    y1 = min(h, y0 + v)
    img = img.copy()
    PIL.ImageDraw.Draw(img).rectangle((x0, y0, x1, y1), (125, 123, 114))
    return img


# (operation, minimum, maximum) in TorchSSL's augment_list() order.
RANDAUGMENT_OPS = [
    (_auto_contrast, 0, 1),
    (_brightness, 0.05, 0.95),
    (_color, 0.05, 0.95),
    (_contrast, 0.05, 0.95),
    (_equalize, 0, 1),
    (_identity, 0, 1),
    (_posterize, 4, 8),
    (_rotate, -30, 30),
    (_sharpness, 0.05, 0.95),
    (_shear_x, -0.3, 0.3),
    (_shear_y, -0.3, 0.3),
    (_solarize, 0, 256),
    (_translate_x, -0.3, 0.3),
    (_translate_y, -0.3, 0.3),
]


class RandAugment:
    """TorchSSL's RandAugment: `n` ops drawn with replacement, each at a uniform magnitude, then Cutout.

    `m` is stored but unused, as in TorchSSL. Draws use Python's `random`
    module, and Cutout's position uses NumPy's global generator.
    """

    def __init__(self, n, m):
        self.n = n
        self.m = m

    def __call__(self, img):
        """Apply the drawn ops and Cutout to a PIL image."""
        for op, min_value, max_value in random.choices(RANDAUGMENT_OPS, k=self.n):
            value = min_value + float(max_value - min_value) * random.random()
            img = op(img, value)
        return cutout(img, random.random() * 0.5)


# --- Data ---------------------------------------------------------------------------------------


def weak_transform():
    """Return TorchSSL's training transform: flip, reflect-padded crop, ToTensor, Normalize."""
    return transforms.Compose([
        transforms.RandomHorizontalFlip(),
        transforms.RandomCrop(CROP_SIZE, padding=CROP_PADDING, padding_mode="reflect"),
        transforms.ToTensor(),
        transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
    ])


def strong_transform():
    """Return TorchSSL's strong transform: RandAugment(3, 5) with Cutout inserted before the weak transform."""
    transform = copy.deepcopy(weak_transform())
    transform.transforms.insert(0, RandAugment(3, 5))
    return transform


class SslDataset(Dataset):
    """TorchSSL's BasicDataset for the three views this script needs.

    `mode` "labeled" yields (index, weak view, label), "fixmatch" yields
    (index, weak view, strong view) and "mixmatch" yields (index, weak view,
    second weak view).
    """

    def __init__(self, images, labels, mode):
        if mode not in ("labeled", "fixmatch", "mixmatch"):
            raise ValueError(f"unknown dataset mode {mode!r}, expected labeled, fixmatch or mixmatch")
        self.images = images
        self.labels = labels
        self.mode = mode
        self.transform = weak_transform()
        self.strong_transform = strong_transform()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        img = Image.fromarray(self.images[index])
        img_w = self.transform(img)
        if self.mode == "labeled":
            return index, img_w, int(self.labels[index])
        if self.mode == "fixmatch":
            return index, img_w, self.strong_transform(img)
        return index, img_w, self.transform(img)


def sampler_seed(seed, name):
    """Derive a 63-bit sampler seed from the run seed and a loader name."""
    digest = hashlib.sha256(f"torchssl-reference/{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def train_loader(dataset, batch_size, iterations, seed, name):
    """Build TorchSSL's training loader: RandomSampler with replacement, `batch_size * iterations` draws.

    BatchSampler drops no batch because the draw count is a multiple of the
    batch size, so the loader yields exactly `iterations` batches.
    """
    generator = torch.Generator().manual_seed(sampler_seed(seed, name))
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch_size * iterations, generator=generator)
    return DataLoader(dataset, batch_sampler=BatchSampler(sampler, batch_size, drop_last=True), num_workers=0)


def normalized_images(images):
    """Convert uint8 NHWC images to normalised float32 NCHW as ToTensor and Normalize do, for the whole array."""
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).to(dtype=torch.float32).div(255)
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, dtype=torch.float32).view(1, 3, 1, 1)
    return tensor.sub(mean).div(std)


# --- semisup artifacts --------------------------------------------------------------------------


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(directory):
    with open(os.path.join(directory, "manifest.json"), encoding="utf-8") as file:
        return json.load(file)


def _complete_artifacts(artifacts, stage):
    """Yield (key, directory, manifest) of every artifact of `stage` that has a manifest.json.

    semisup's cache writes the manifest last and renames a finished temporary
    folder into place, so a folder with a manifest is complete. Temporary
    folders start with a dot and are skipped.
    """
    stage_dir = os.path.join(artifacts, stage)
    if not os.path.isdir(stage_dir):
        return
    for key in sorted(os.listdir(stage_dir)):
        directory = os.path.join(stage_dir, key)
        if key.startswith(".") or not os.path.isfile(os.path.join(directory, "manifest.json")):
            continue
        yield key, directory, _read_manifest(directory)


def _check_files(directory, manifest, names):
    for name in names:
        expected = manifest.get("files", {}).get(name)
        path = os.path.join(directory, name)
        if expected is None or not os.path.isfile(path):
            raise ArtifactError(f"{path} is missing or not listed in {directory}/manifest.json; "
                                "delete the folder and rerun the semisup stage that builds it.")
        actual = _sha256(path)
        if actual != expected:
            raise ArtifactError(f"{path} has SHA-256 {actual}, but its manifest lists {expected}; "
                                "delete the folder and rerun the semisup stage that builds it.")


def find_artifacts(artifacts, labels, seed):
    """Return the download and split artifact directories for `labels` labels and `seed`.

    The split is matched by its manifest params, and the download is the one
    that split was built from (`inputs.dataset`). Several matching splits are
    accepted only when their split.json and their datasets' arrays have the
    same hashes.
    """
    hint = (f"run `deno task split --profile reference --dataset ARCHIVE` with the CIFAR-10 archive "
            f"(or another profile with {labels} labels and seed {seed}) first, or pass --artifacts DIR")
    matches = []
    for key, directory, manifest in _complete_artifacts(artifacts, "split"):
        params = manifest.get("params", {})
        if params.get("labels") == labels and params.get("seed") == seed:
            matches.append((key, directory, manifest))
    if not matches:
        raise ArtifactError(f"no split artifact for {labels} labels and seed {seed} in {artifacts}/split; {hint}.")

    candidates = []
    for key, directory, manifest in matches:
        dataset_key = manifest.get("inputs", {}).get("dataset")
        download_dir = os.path.join(artifacts, "download", str(dataset_key))
        if dataset_key is None or not os.path.isfile(os.path.join(download_dir, "manifest.json")):
            raise ArtifactError(f"split artifact {directory} was built from download artifact {dataset_key}, "
                                f"which is not in {artifacts}/download; {hint}.")
        download_files = _read_manifest(download_dir).get("files", {})
        fingerprint = (manifest.get("files", {}).get("split.json"),
                       tuple(sorted((name, digest) for name, digest in download_files.items() if name.endswith(".bin"))))
        candidates.append((fingerprint, directory, download_dir))

    if len({fingerprint for fingerprint, _, _ in candidates}) > 1:
        listing = ", ".join(f"{split_dir} (data {download_dir})" for _, split_dir, download_dir in candidates)
        raise ArtifactError(f"split artifacts for {labels} labels and seed {seed} differ in their labeled indices "
                            f"or data: {listing}. Delete the stale ones or pass --artifacts pointing at one store.")
    _, split_dir, download_dir = candidates[0]
    return download_dir, split_dir


def load_data(download_dir, split_dir, labels, seed):
    """Read and check the train and test arrays and the labeled indices.

    Returns a dict with uint8 NHWC `train_images` and `test_images`, int64
    `train_labels` and `test_labels`, and int64 `labeled_indices`.
    """
    download_manifest = _read_manifest(download_dir)
    array_files = ["train_images.bin", "train_labels.bin", "test_images.bin", "test_labels.bin"]
    _check_files(download_dir, download_manifest, array_files + ["dataset.json"])
    with open(os.path.join(download_dir, "dataset.json"), encoding="utf-8") as file:
        dataset = json.load(file)
    shape = (dataset["height"], dataset["width"], dataset["channels"])
    if shape != (32, 32, 3) or len(dataset["classNames"]) != NUM_CLASSES:
        raise ArtifactError(f"{download_dir} contains {dataset['name']} with images {shape} and "
                            f"{len(dataset['classNames'])} classes; this script needs CIFAR-10 (32, 32, 3) and 10 classes.")

    def read(name, count, item_shape):
        array = np.fromfile(os.path.join(download_dir, name), dtype=np.uint8)
        expected = count * int(np.prod(item_shape, dtype=np.int64))
        if array.size != expected:
            raise ArtifactError(f"{download_dir}/{name} has {array.size} bytes, expected {expected}; "
                                "delete the folder and rerun `deno task download`.")
        return array.reshape((count, *item_shape))

    data = {
        "train_images": read("train_images.bin", dataset["trainCount"], shape),
        "train_labels": read("train_labels.bin", dataset["trainCount"], ()).astype(np.int64),
        "test_images": read("test_images.bin", dataset["testCount"], shape),
        "test_labels": read("test_labels.bin", dataset["testCount"], ()).astype(np.int64),
    }

    _check_files(split_dir, _read_manifest(split_dir), ["split.json"])
    with open(os.path.join(split_dir, "split.json"), encoding="utf-8") as file:
        split = json.load(file)
    indices = np.asarray(split["labeled_indices"], dtype=np.int64)
    if split.get("labels") != labels or split.get("seed") != seed or indices.size != labels:
        raise ArtifactError(f"{split_dir}/split.json contains {indices.size} labeled indices for labels "
                            f"{split.get('labels')} and seed {split.get('seed')}, expected {labels} for seed {seed}.")
    if indices.min() < 0 or indices.max() >= dataset["trainCount"] or np.unique(indices).size != indices.size:
        raise ArtifactError(f"{split_dir}/split.json has labeled indices outside [0, {dataset['trainCount']}) "
                            "or repeated; delete the folder and rerun `deno task split`.")
    per_class = np.bincount(data["train_labels"][indices], minlength=NUM_CLASSES)
    if per_class.min() != per_class.max():
        raise ArtifactError(f"{split_dir}/split.json is not balanced over classes: {per_class.tolist()}.")
    data["labeled_indices"] = indices
    return data


# --- TorchSSL training components ---------------------------------------------------------------


class TorchSslEma:
    """TorchSSL's EMA (train_utils.py): a shadow of the trainable parameters only.

    BN running statistics are buffers and are not averaged, so the EMA model
    is evaluated with the raw model's running statistics, as in TorchSSL.
    """

    def __init__(self, model, decay):
        self.model = model
        self.decay = decay
        self.shadow = {}
        self.backup = {}

    def register(self):
        """Copy the current parameters into the shadow."""
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                self.shadow[name] = param.data.clone()

    def update(self):
        """Set `shadow = (1 - decay) * param + decay * shadow` for each parameter."""
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                self.shadow[name] = ((1.0 - self.decay) * param.data + self.decay * self.shadow[name]).clone()

    def apply_shadow(self):
        """Swap the shadow values into the model, keeping the raw ones for `restore`."""
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                self.backup[name] = param.data
                param.data = self.shadow[name]

    def restore(self):
        """Put back the raw parameters saved by `apply_shadow`."""
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                param.data = self.backup[name]
        self.backup = {}


def cosine_schedule(optimizer, num_training_steps):
    """Build TorchSSL's get_cosine_schedule_with_warmup without warm-up: factor `cos(7 pi k / (16 K))`."""

    def factor(step):
        return max(0.0, math.cos(math.pi * COSINE_CYCLES * float(step) / float(max(1, num_training_steps))))

    return LambdaLR(optimizer, factor)


def fixmatch_step(model, x_lb, y_lb, x_ulb_w, x_ulb_s):
    """Compute FixMatch's losses from one forward of the concatenated batch (models/fixmatch/fixmatch.py)."""
    num_lb = x_lb.shape[0]
    logits = model(torch.cat((x_lb, x_ulb_w, x_ulb_s)))
    logits_x_lb = logits[:num_lb]
    logits_x_ulb_w, logits_x_ulb_s = logits[num_lb:].chunk(2)
    sup_loss = F.nll_loss(F.log_softmax(logits_x_lb, dim=-1), y_lb, reduction="mean")

    # consistency_loss with 'ce' and hard pseudo-labels: T is unused.
    probabilities = torch.softmax(logits_x_ulb_w.detach(), dim=-1)
    max_probs, pseudo_labels = torch.max(probabilities, dim=-1)
    mask = max_probs.ge(FIXMATCH["p_cutoff"]).float()
    per_image = F.nll_loss(F.log_softmax(logits_x_ulb_s, dim=-1), pseudo_labels, reduction="none")
    unsup_loss = (per_image * mask).mean()

    total_loss = sup_loss + FIXMATCH["lambda_u"] * unsup_loss
    return total_loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_rate": mask.mean(),
                        "lambda_u": FIXMATCH["lambda_u"]}


def mixmatch_step(model, x_lb, y_lb, x_ulb_w1, x_ulb_w2, iteration, num_train_iter):
    """Compute MixMatch's losses as models/mixmatch/mixmatch.py does.

    `iteration` counts from 0, as TorchSSL's `self.it`. Label guessing and the
    forwards of all but the first mixed chunk keep the BN running statistics
    unchanged (TorchSSL's Bn_Controller).
    """
    num_lb = x_lb.shape[0]
    with torch.no_grad():
        with frozen_bn_statistics(model):
            logits_x_ulb_w1 = model(x_ulb_w1)
            logits_x_ulb_w2 = model(x_ulb_w2)
        avg_prob = (torch.softmax(logits_x_ulb_w1, dim=1) + torch.softmax(logits_x_ulb_w2, dim=1)) / 2
        avg_prob = avg_prob / avg_prob.sum(dim=-1, keepdim=True)
        sharpened = avg_prob ** (1 / MIXMATCH["T"])
        sharpened = sharpened / sharpened.sum(dim=-1, keepdim=True)

        one_hot = torch.zeros(num_lb, NUM_CLASSES).scatter_(1, y_lb.unsqueeze(1), 1)
        input_labels = torch.cat([one_hot, sharpened, sharpened], dim=0)
        inputs = torch.cat([x_lb, x_ulb_w1, x_ulb_w2])

        # mixup_one_target with is_bias=True: one lambda per batch from NumPy, the permutation from torch.
        lam = np.random.beta(MIXMATCH["alpha"], MIXMATCH["alpha"])
        lam = max(lam, 1 - lam)
        index = torch.randperm(inputs.size(0))
        mixed_x = lam * inputs + (1 - lam) * inputs[index]
        mixed_y = lam * input_labels + (1 - lam) * input_labels[index]
        mixed_x = interleave(list(torch.split(mixed_x, num_lb)), num_lb)

    logits = [model(mixed_x[0])]
    with frozen_bn_statistics(model):
        for chunk in mixed_x[1:]:
            logits.append(model(chunk))
    logits = interleave(logits, num_lb)
    logits_x = logits[0]
    logits_u = torch.cat(logits[1:], dim=0)

    sup_loss = torch.sum(-mixed_y[:num_lb] * F.log_softmax(logits_x, dim=-1), dim=1).mean()
    unsup_loss = F.mse_loss(torch.softmax(logits_u, dim=-1), mixed_y[num_lb:], reduction="mean")
    rampup = float(np.clip(iteration / (MIXMATCH["ramp_up"] * num_train_iter), 0.0, 1.0))
    lambda_u = MIXMATCH["lambda_u"] * rampup
    total_loss = sup_loss + lambda_u * unsup_loss
    return total_loss, {"sup_loss": sup_loss, "unsup_loss": unsup_loss, "mask_rate": None, "lambda_u": lambda_u}


@torch.no_grad()
def top1_accuracy(model, images, labels):
    """Return the top-1 accuracy of `model` in eval mode on normalised images, in batches of 1024."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, images.shape[0], EVAL_BATCH_SIZE):
        logits = model(images[start:start + EVAL_BATCH_SIZE])
        correct += int((logits.argmax(dim=-1) == labels[start:start + EVAL_BATCH_SIZE]).sum())
    model.train(was_training)
    return correct / images.shape[0]


def _mean_of_last(rows, key):
    values = [row[key] for row in rows[-LAST_ITERATIONS:] if row[key] is not None]
    return sum(values) / len(values) if values else None


def _log(message):
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def seed_everything(seed):
    """Seed Python's, NumPy's and torch's global generators, as TorchSSL's main_worker does."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_algorithm(algorithm, iterations, data, options):
    """Train `algorithm` for `iterations` TorchSSL iterations, evaluate, and return the result object."""
    started = time.perf_counter()
    torch.set_num_threads(options["threads"])
    seed = options["seed"]
    seed_everything(seed)

    # TorchSSL builds the network right after seeding, so the initial weights are its seed's weights.
    model = WideResNet()
    parameters = count_parameters(model)
    if parameters != EXPECTED_PARAMETERS:
        raise RuntimeError(f"WideResNet-28-2 has {parameters} parameters, expected {EXPECTED_PARAMETERS}; "
                           "fix bench/pytorch_wrn.py's layer list first.")
    optimizer = build_optimizer(model)
    scheduler = cosine_schedule(optimizer, iterations)
    model.train()
    ema = TorchSslEma(model, EMA_DECAY)
    ema.register()

    settings = FIXMATCH if algorithm == "fixmatch" else MIXMATCH
    labeled = SslDataset(data["train_images"][data["labeled_indices"]], data["train_labels"][data["labeled_indices"]],
                         "labeled")
    unlabeled = SslDataset(data["train_images"], data["train_labels"], algorithm)
    loader_lb = train_loader(labeled, BATCH_SIZE, iterations, seed, f"{algorithm}/train_lb")
    loader_ulb = train_loader(unlabeled, BATCH_SIZE * settings["uratio"], iterations, seed, f"{algorithm}/train_ulb")

    rows = []
    train_started = time.perf_counter()
    for iteration, ((_, x_lb, y_lb), (_, x_ulb_1, x_ulb_2)) in enumerate(zip(loader_lb, loader_ulb)):
        step_started = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        if algorithm == "fixmatch":
            total_loss, parts = fixmatch_step(model, x_lb, y_lb, x_ulb_1, x_ulb_2)
        else:
            total_loss, parts = mixmatch_step(model, x_lb, y_lb, x_ulb_1, x_ulb_2, iteration, iterations)
        total_loss.backward()
        optimizer.step()
        scheduler.step()
        ema.update()
        model.zero_grad()

        row = {
            "iteration": iteration + 1,
            "sup_loss": float(parts["sup_loss"]),
            "unsup_loss": float(parts["unsup_loss"]),
            "total_loss": float(total_loss.detach()),
            "lambda_u": float(parts["lambda_u"]),
            "mask_rate": None if parts["mask_rate"] is None else float(parts["mask_rate"]),
            "lr": lr,
            "step_s": time.perf_counter() - step_started,
        }
        rows.append(row)
        if iteration == 0 or row["iteration"] % 10 == 0 or row["iteration"] == iterations:
            mask = "" if row["mask_rate"] is None else f" mask_rate {row['mask_rate']:.3f}"
            _log(f"{algorithm}: iteration {row['iteration']}/{iterations} sup_loss {row['sup_loss']:.4f} "
                 f"unsup_loss {row['unsup_loss']:.4f}{mask} lr {lr:.5f} step {row['step_s']:.2f} s")
    train_seconds = time.perf_counter() - train_started
    if len(rows) != iterations:
        raise RuntimeError(f"{algorithm} ran {len(rows)} iterations, expected {iterations}")

    eval_started = time.perf_counter()
    test_images = normalized_images(data["test_images"])
    test_labels = torch.from_numpy(data["test_labels"])
    ema.apply_shadow()
    ema_accuracy = top1_accuracy(model, test_images, test_labels)
    ema.restore()
    raw_accuracy = top1_accuracy(model, test_images, test_labels)
    eval_seconds = time.perf_counter() - eval_started
    _log(f"{algorithm}: EMA accuracy {ema_accuracy:.4f}, raw accuracy {raw_accuracy:.4f} "
         f"on {test_labels.numel()} test images")

    return {
        "algorithm": algorithm,
        "implementation": "torchssl-reimplementation",
        "iterations": iterations,
        "labels": options["labels"],
        "seed": seed,
        "batch_size": BATCH_SIZE,
        "hyperparameters": dict(settings, ema_decay=EMA_DECAY, lr_cycles=COSINE_CYCLES),
        "last_iterations": min(LAST_ITERATIONS, iterations),
        "sup_loss_last20": _mean_of_last(rows, "sup_loss"),
        "unsup_loss_last20": _mean_of_last(rows, "unsup_loss"),
        "mask_rate_last20": _mean_of_last(rows, "mask_rate"),
        "ema_accuracy": ema_accuracy,
        "raw_accuracy": raw_accuracy,
        "test_images": int(test_labels.numel()),
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "wall_seconds": time.perf_counter() - started,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "pillow_version": PIL.__version__,
        "numpy_version": np.__version__,
        "artifacts": {"download": options["download_dir"], "split": options["split_dir"]},
        "log": rows,
    }


# --- Command line -------------------------------------------------------------------------------


def parse_args(argv):
    """Parse command-line flags. argparse exits with status 2 on invalid ones."""
    parser = argparse.ArgumentParser(
        description="Train FixMatch and MixMatch as TorchSSL does on semisup's CIFAR-10 artifacts and print one "
        "JSON object per algorithm.")
    parser.add_argument("--algorithms", type=algorithm_list, default=list(ALGORITHMS),
                        help="comma-separated algorithms to train (default: fixmatch,mixmatch)")
    parser.add_argument("--iterations-fixmatch", type=positive_int, default=100,
                        help="FixMatch iterations, also the cosine schedule's length (default: 100)")
    parser.add_argument("--iterations-mixmatch", type=positive_int, default=300,
                        help="MixMatch iterations, also the cosine schedule's and ramp-up's length (default: 300)")
    parser.add_argument("--labels", type=positive_int, default=4000,
                        help="labeled images; selects the split artifact (default: 4000)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the split artifact, the weights, sampling and augmentation (default: 0)")
    parser.add_argument("--threads", type=positive_int, default=2,
                        help="intra-op threads for torch.set_num_threads (default: 2)")
    parser.add_argument("--artifacts", default="artifacts",
                        help="semisup artifact store holding download/ and split/ (default: artifacts)")
    parser.add_argument("--out", default=None,
                        help="also write the JSON lines to this file")
    return parser.parse_args(argv)


def main(argv):
    """Train each requested algorithm and print its result as a JSON line."""
    args = parse_args(argv)
    try:
        download_dir, split_dir = find_artifacts(args.artifacts, args.labels, args.seed)
        _log(f"data: {download_dir}, split: {split_dir}")
        data = load_data(download_dir, split_dir, args.labels, args.seed)
    except ArtifactError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    options = {"seed": args.seed, "threads": args.threads, "labels": args.labels,
               "download_dir": download_dir, "split_dir": split_dir}
    counts = {"fixmatch": args.iterations_fixmatch, "mixmatch": args.iterations_mixmatch}
    lines = []
    for algorithm in args.algorithms:
        _log(f"{algorithm}: starting {counts[algorithm]} iterations with {args.threads} torch threads")
        result = run_algorithm(algorithm, counts[algorithm], data, options)
        line = json.dumps(result, allow_nan=False)
        print(line, flush=True)
        lines.append(line)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as file:
                file.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
