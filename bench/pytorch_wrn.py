#!/usr/bin/python3
"""Time TorchSSL-style FixMatch and MixMatch training iterations in PyTorch.

The model is WideResNet-28-2 as TorchSSL builds it for CIFAR-10, and each
iteration follows TorchSSL's train step: forward, losses, backward, SGD step,
cosine LR step and EMA update. Inputs are synthetic (seeded normal images and
uniform labels), so data loading and augmentation are not timed.

Each algorithm runs in its own spawned process, so `peak_rss_bytes` is the
peak resident memory of that algorithm alone (plus the interpreter and torch).

stdout gets one JSON object per algorithm, one per line. Progress goes to
stderr. Invalid flags exit with status 2.

Example:
    /usr/bin/python3 bench/pytorch_wrn.py --algorithms fixmatch --iterations 2 --warmup 1
"""

import argparse
import concurrent.futures
import contextlib
import json
import math
import multiprocessing
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ALGORITHMS = ("fixmatch", "mixmatch")

# Parameter count of the TypeScript WideResNet-28-2 (learning/nn/_architecture.ts).
# Both models must have the same layers, biases included, for the comparison to be fair.
EXPECTED_PARAMETERS = 1_469_642

NUM_CLASSES = 10
IMAGE_SHAPE = (3, 32, 32)

# TorchSSL's CIFAR-10 hyperparameters.
BN_MOMENTUM = 0.001
BN_EPS = 0.001
LEAKY_SLOPE = 0.1
LEARNING_RATE = 0.03
SGD_MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
EMA_DECAY = 0.999
TOTAL_TRAIN_ITERATIONS = 2**20
COSINE_CYCLES = 7 / 16
FIXMATCH_THRESHOLD = 0.95
FIXMATCH_LAMBDA_U = 1.0
MIXMATCH_TEMPERATURE = 0.5
MIXMATCH_ALPHA = 0.5
MIXMATCH_LAMBDA_U = 100.0


class BasicBlock(nn.Module):
    """Pre-activation residual block of TorchSSL's WideResNet.

    Every convolution has a bias. A 1x1 shortcut convolution exists only where
    the channel count changes. With `activate_before_residual`, bn1 and the
    LeakyReLU feed both branches. Without it, a block that changes channels
    computes `relu1(bn1(x))` and discards it, as TorchSSL does: bn1 then gets
    no gradient but still updates its running statistics in train mode.
    """

    def __init__(self, in_channels, out_channels, stride, activate_before_residual):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, momentum=BN_MOMENTUM, eps=BN_EPS)
        self.relu1 = nn.LeakyReLU(negative_slope=LEAKY_SLOPE)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM, eps=BN_EPS)
        self.relu2 = nn.LeakyReLU(negative_slope=LEAKY_SLOPE)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=True)
        self.equal_in_out = in_channels == out_channels
        self.convShortcut = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, padding=0, bias=True)
        self.activate_before_residual = activate_before_residual

    def forward(self, x):
        """Apply the block to an NCHW batch."""
        activated = self.relu1(self.bn1(x))
        if self.equal_in_out:
            residual_input = activated
            shortcut = x
        elif self.activate_before_residual:
            residual_input = activated
            shortcut = self.convShortcut(activated)
        else:
            residual_input = x
            shortcut = self.convShortcut(x)
        out = self.relu2(self.bn2(self.conv1(residual_input)))
        return shortcut + self.conv2(out)


class NetworkBlock(nn.Module):
    """Group of BasicBlocks under TorchSSL's module names (`block1.layer.0`)."""

    def __init__(self, layers, in_channels, out_channels, stride, activate_before_residual):
        super().__init__()
        blocks = []
        for index in range(layers):
            blocks.append(
                BasicBlock(
                    in_channels if index == 0 else out_channels,
                    out_channels,
                    stride if index == 0 else 1,
                    activate_before_residual,
                )
            )
        self.layer = nn.Sequential(*blocks)

    def forward(self, x):
        """Apply the blocks in order."""
        return self.layer(x)


class WideResNet(nn.Module):
    """TorchSSL's `WideResNet(first_stride=1, depth, widen_factor)` for 32x32 inputs.

    Initialisation follows TorchSSL: Kaiming normal (fan_out, leaky_relu) for
    convolutions, unit scale and zero shift for BN, Xavier normal for the
    classifier weight and zero biases for BN and the classifier.
    """

    def __init__(self, depth=28, widen_factor=2, num_classes=NUM_CLASSES):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        layers = (depth - 4) // 6
        channels = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(3, channels[0], 3, stride=1, padding=1, bias=True)
        self.block1 = NetworkBlock(layers, channels[0], channels[1], 1, activate_before_residual=True)
        self.block2 = NetworkBlock(layers, channels[1], channels[2], 2, activate_before_residual=False)
        self.block3 = NetworkBlock(layers, channels[2], channels[3], 2, activate_before_residual=False)
        self.bn1 = nn.BatchNorm2d(channels[3], momentum=BN_MOMENTUM, eps=BN_EPS)
        self.relu = nn.LeakyReLU(negative_slope=LEAKY_SLOPE)
        self.fc = nn.Linear(channels[3], num_classes)
        self._initialize()

    def _initialize(self):
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x):
        """Return the logits [N, num_classes] of an NCHW batch."""
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = self.relu(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


class ExponentialMovingAverage:
    """EMA of the model's trainable parameters (not its BN buffers), as TorchSSL keeps it."""

    def __init__(self, model, decay):
        self.decay = decay
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.shadow = [p.detach().clone() for p in self.parameters]

    @torch.no_grad()
    def update(self):
        """Move each shadow value towards its parameter: `shadow = decay * shadow + (1 - decay) * param`."""
        for shadow, parameter in zip(self.shadow, self.parameters):
            shadow.mul_(self.decay).add_(parameter, alpha=1.0 - self.decay)


@contextlib.contextmanager
def frozen_bn_statistics(model):
    """Restore every BN running mean, variance and batch count on exit.

    TorchSSL's MixMatch wraps the label-guessing forwards and the forwards of
    all but the first mixed chunk this way, so only the first chunk updates
    the running statistics. The forwards still normalise with batch
    statistics because the model stays in train mode.
    """
    saved = []
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            saved.append((module, module.running_mean.clone(), module.running_var.clone(),
                          module.num_batches_tracked.clone()))
    try:
        yield
    finally:
        # Swap in the saved tensors instead of copying into the live ones, because
        # autograd may have saved the live ones for backward and an in-place write
        # would invalidate them.
        for module, mean, variance, count in saved:
            module.running_mean = mean
            module.running_var = variance
            module.num_batches_tracked = count


def build_optimizer(model):
    """Build TorchSSL's SGD: Nesterov momentum, weight decay on all but BN parameters and biases."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if "bn" in name or "bias" in name:
            no_decay.append(parameter)
        else:
            decay.append(parameter)
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=LEARNING_RATE, momentum=SGD_MOMENTUM, weight_decay=WEIGHT_DECAY,
                           nesterov=True)


def build_scheduler(optimizer):
    """Build TorchSSL's cosine LR schedule, `lr * cos(7 pi k / (16 K))`, without warmup."""

    def factor(step):
        return max(0.0, math.cos(math.pi * COSINE_CYCLES * step / TOTAL_TRAIN_ITERATIONS))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def random_images(count, generator):
    """Draw `count` standard-normal NCHW images, which have the scale of normalised CIFAR-10 inputs."""
    return torch.randn((count, *IMAGE_SHAPE), generator=generator)


def random_labels(count, generator):
    """Draw `count` uniform class labels."""
    return torch.randint(0, NUM_CLASSES, (count,), generator=generator)


def make_fixmatch_batch(batch_size, uratio, generator):
    """Return a labeled batch and weak and strong unlabeled views of `uratio * batch_size` images each."""
    unlabeled = uratio * batch_size
    return {
        "x_lb": random_images(batch_size, generator),
        "y_lb": random_labels(batch_size, generator),
        "x_ulb_w": random_images(unlabeled, generator),
        "x_ulb_s": random_images(unlabeled, generator),
    }


def make_mixmatch_batch(batch_size, generator):
    """Return a labeled batch and two augmented views (K = 2) of an unlabeled batch of the same size."""
    return {
        "x_lb": random_images(batch_size, generator),
        "y_lb": random_labels(batch_size, generator),
        "x_ulb_w1": random_images(batch_size, generator),
        "x_ulb_w2": random_images(batch_size, generator),
    }


def fixmatch_loss(model, batch):
    """Compute FixMatch's loss from a single forward of the labeled, weak and strong images concatenated."""
    num_lb = batch["x_lb"].shape[0]
    inputs = torch.cat((batch["x_lb"], batch["x_ulb_w"], batch["x_ulb_s"]))
    logits = model(inputs)
    logits_lb = logits[:num_lb]
    logits_ulb_w, logits_ulb_s = logits[num_lb:].chunk(2)
    sup_loss = F.nll_loss(F.log_softmax(logits_lb, dim=-1), batch["y_lb"], reduction="mean")

    # Hard pseudo-labels from the weak view, kept where the max probability reaches the threshold.
    probabilities = torch.softmax(logits_ulb_w.detach(), dim=-1)
    max_probabilities, pseudo_labels = probabilities.max(dim=-1)
    mask = max_probabilities.ge(FIXMATCH_THRESHOLD).float()
    per_image = F.nll_loss(F.log_softmax(logits_ulb_s, dim=-1), pseudo_labels, reduction="none")
    unsup_loss = (per_image * mask).mean()
    return sup_loss + FIXMATCH_LAMBDA_U * unsup_loss


def interleave_offsets(batch, chunks):
    """Return slice offsets that split `batch` rows into `chunks` near-equal groups, larger groups last."""
    sizes = [batch // chunks] * chunks
    for index in range(batch - sum(sizes)):
        sizes[-index - 1] += 1
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    return offsets


def interleave(tensors, batch):
    """Swap group i of tensor 0 with group i of tensor i, as TorchSSL's MixMatch does.

    The labeled chunk then contains rows from every chunk, so the BN batch
    statistics of the first forward see labeled and unlabeled images. The
    operation is its own inverse.
    """
    offsets = interleave_offsets(batch, len(tensors))
    groups = [[t[offsets[p]:offsets[p + 1]] for p in range(len(tensors))] for t in tensors]
    for index in range(1, len(tensors)):
        groups[0][index], groups[index][index] = groups[index][index], groups[0][index]
    return [torch.cat(row, dim=0) for row in groups]


def draw_mixup(count, generator):
    """Draw the mixup weight `max(l, 1 - l)` with `l ~ Beta(alpha, alpha)`, and a permutation of `count` rows."""
    lam = float(torch.distributions.Beta(MIXMATCH_ALPHA, MIXMATCH_ALPHA).sample())
    index = torch.randperm(count, generator=generator)
    return max(lam, 1 - lam), index


@torch.no_grad()
def mixmatch_targets(model, batch, generator):
    """Guess labels, then mix up all images and targets.

    Returns the three interleaved input chunks and the mixed targets in mixup order.
    """
    num_lb = batch["x_lb"].shape[0]

    with frozen_bn_statistics(model):
        probabilities_w1 = torch.softmax(model(batch["x_ulb_w1"]), dim=1)
        probabilities_w2 = torch.softmax(model(batch["x_ulb_w2"]), dim=1)
    average = (probabilities_w1 + probabilities_w2) / 2
    average = average / average.sum(dim=-1, keepdim=True)
    sharpened = average ** (1 / MIXMATCH_TEMPERATURE)
    sharpened = sharpened / sharpened.sum(dim=-1, keepdim=True)

    one_hot = F.one_hot(batch["y_lb"], NUM_CLASSES).float()
    targets = torch.cat([one_hot, sharpened, sharpened], dim=0)
    inputs = torch.cat([batch["x_lb"], batch["x_ulb_w1"], batch["x_ulb_w2"]])

    lam, index = draw_mixup(inputs.shape[0], generator)
    mixed_inputs = lam * inputs + (1 - lam) * inputs[index]
    mixed_targets = lam * targets + (1 - lam) * targets[index]

    chunks = interleave(list(torch.split(mixed_inputs, num_lb)), num_lb)
    return chunks, mixed_targets


def mixmatch_loss(model, batch, generator):
    """Compute MixMatch's loss from three forwards of the interleaved mixed chunks."""
    num_lb = batch["x_lb"].shape[0]
    chunks, mixed_targets = mixmatch_targets(model, batch, generator)

    logits = [model(chunks[0])]
    with frozen_bn_statistics(model):
        for chunk in chunks[1:]:
            logits.append(model(chunk))
    logits = interleave(logits, num_lb)
    logits_x = logits[0]
    logits_u = torch.cat(logits[1:], dim=0)

    sup_loss = torch.sum(-mixed_targets[:num_lb] * F.log_softmax(logits_x, dim=-1), dim=1).mean()
    unsup_loss = F.mse_loss(torch.softmax(logits_u, dim=-1), mixed_targets[num_lb:], reduction="mean")
    # NOTE: lambda_u is its value after the ramp-up. The ramp-up factor does not change the work timed.
    return sup_loss + MIXMATCH_LAMBDA_U * unsup_loss


def train_iteration(model, optimizer, scheduler, ema, compute_loss):
    """Run one training iteration and return its total loss."""
    total_loss = compute_loss()
    total_loss.backward()
    optimizer.step()
    scheduler.step()
    ema.update()
    model.zero_grad()
    return float(total_loss.detach())


def count_parameters(model):
    """Return the number of trainable scalars in `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def run_algorithm(algorithm, options):
    """Build a fresh model and time `options["iterations"]` training iterations of `algorithm`.

    Returns the result object that `main` prints as one JSON line.
    """
    torch.set_num_threads(options["threads"])
    torch.manual_seed(options["seed"])
    generator = torch.Generator().manual_seed(options["seed"])

    model = WideResNet()
    parameters = count_parameters(model)
    if parameters != EXPECTED_PARAMETERS:
        raise RuntimeError(
            f"WideResNet-28-2 has {parameters} parameters, expected {EXPECTED_PARAMETERS} "
            "as in the TypeScript model. Fix the layer list before comparing throughput."
        )
    model.train()
    optimizer = build_optimizer(model)
    scheduler = build_scheduler(optimizer)
    ema = ExponentialMovingAverage(model, EMA_DECAY)

    batch_size = options["batch_size"]
    if algorithm == "fixmatch":
        batch = make_fixmatch_batch(batch_size, options["uratio"], generator)
        images = batch_size * (1 + 2 * options["uratio"])

        def compute_loss():
            return fixmatch_loss(model, batch)
    else:
        batch = make_mixmatch_batch(batch_size, generator)
        images = 3 * batch_size

        def compute_loss():
            return mixmatch_loss(model, batch, generator)

    total = options["warmup"] + options["iterations"]
    seconds = []
    loss = float("nan")
    for step in range(total):
        start = time.perf_counter()
        loss = train_iteration(model, optimizer, scheduler, ema, compute_loss)
        elapsed = time.perf_counter() - start
        timed = step >= options["warmup"]
        if timed:
            seconds.append(elapsed)
        kind = "timed" if timed else "warmup"
        print(f"{algorithm}: iteration {step + 1}/{total} ({kind}) took {elapsed:.3f} s, loss {loss:.4f}",
              file=sys.stderr, flush=True)

    median = statistics.median(seconds)
    return {
        "algorithm": algorithm,
        "images_per_iteration": images,
        "seconds_per_iteration": median,
        "images_per_second": images / median,
        "iterations": len(seconds),
        "iteration_seconds": seconds,
        "warmup": options["warmup"],
        "batch_size": batch_size,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
        # Linux reports ru_maxrss in KiB.
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "loss": loss,
    }


def run_isolated(algorithm, options):
    """Run `run_algorithm` in a spawned process so its peak RSS excludes other algorithms."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(run_algorithm, algorithm, options).result()


def positive_int(text):
    """Parse an integer >= 1 for argparse."""
    return _bounded_int(text, 1)


def non_negative_int(text):
    """Parse an integer >= 0 for argparse."""
    return _bounded_int(text, 0)


def _bounded_int(text, minimum):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}, expected a whole number >= {minimum}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"invalid value {value}, expected a whole number >= {minimum}")
    return value


def algorithm_list(text):
    """Parse a comma-separated list of algorithm names for argparse."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"empty algorithm list {text!r}, pass for example fixmatch,mixmatch")
    for name in names:
        if name not in ALGORITHMS:
            raise argparse.ArgumentTypeError(
                f"unknown algorithm {name!r}, expected a comma-separated subset of {','.join(ALGORITHMS)}"
            )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"duplicate algorithm in {text!r}, list each algorithm once")
    return names


def parse_args(argv):
    """Parse command-line flags. argparse exits with status 2 on invalid ones."""
    parser = argparse.ArgumentParser(
        description="Time TorchSSL-style training iterations of WideResNet-28-2 on synthetic CIFAR-10-sized inputs. "
        "Prints one JSON object per algorithm on stdout."
    )
    parser.add_argument("--algorithms", type=algorithm_list, default=list(ALGORITHMS),
                        help="comma-separated algorithms to time (default: fixmatch,mixmatch)")
    parser.add_argument("--iterations", type=positive_int, default=3,
                        help="timed training iterations per algorithm; the median is reported (default: 3)")
    parser.add_argument("--warmup", type=non_negative_int, default=1,
                        help="untimed training iterations before the timed ones (default: 1)")
    parser.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1,
                        help="intra-op threads for torch.set_num_threads (default: os.cpu_count())")
    parser.add_argument("--fixmatch-uratio", dest="uratio", type=positive_int, default=7,
                        help="FixMatch unlabeled images per labeled image, per view (default: 7)")
    parser.add_argument("--batch-size", type=positive_int, default=64,
                        help="labeled images per iteration; MixMatch also uses it for the unlabeled batch (default: 64)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seed of the weights, synthetic inputs and mixup draws (default: 0)")
    return parser.parse_args(argv)


def main(argv):
    """Time each requested algorithm and print its result as a JSON line."""
    args = parse_args(argv)
    options = {
        "iterations": args.iterations,
        "warmup": args.warmup,
        "threads": args.threads,
        "uratio": args.uratio,
        "batch_size": args.batch_size,
        "seed": args.seed,
    }
    for algorithm in args.algorithms:
        print(f"{algorithm}: starting ({args.warmup} warmup + {args.iterations} timed iterations, "
              f"{args.threads} threads)", file=sys.stderr, flush=True)
        result = run_isolated(algorithm, options)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
