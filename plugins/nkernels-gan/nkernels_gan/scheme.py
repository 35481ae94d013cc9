"""The ``gan`` scheme: a generator and a discriminator trained against each other (Goodfellow et al. 2014)."""
from __future__ import annotations

from typing import Any

import numpy as np

import nkernels as nk
from nkernels.runtime import devices
from nkernels.runtime.threads import blas_single_threaded
from nkernels.sampling import latent_dim as generator_latent_dim
from nkernels.schemes import Capabilities, Diverged, Scheme
from nkernels.trainers import LayerwiseTrainer, make_trainer
from nkernels.validation import check_bool, check_int, check_model_input, check_number

#: Adam's moment decay rates of DCGAN (Radford et al. 2016), which GANs train with: a shorter memory
#: of the first moment keeps up with an opponent that moves
GAN_BETAS = (0.5, 0.999)
#: the learning rate of both chains unless given
DEFAULT_LR = 1e-3


class GAN(Scheme):
    """Generative adversarial networks (Goodfellow et al., 2014) with the non-saturating generator loss.

    ``nk.train(discriminator, X, scheme="gan", generator=G)`` trains both chains on the samples
    ``X`` (no labels). Each step draws ``batch_size`` real rows and as many latent vectors
    ``z ~ N(0, 1)`` of shape ``(batch_size, latent_dim)``, then

    1. trains the discriminator one step on the real rows (target 1) and ``G(z)`` (target 0),
       with ``bce_with_logits`` on its one logit per sample;
    2. trains the generator one step on fresh ``z`` to make the discriminator answer 1
       (``-log D(G(z))``, the non-saturating loss), through the discriminator, whose weights
       stay put.

    Both steps run on the compiled path when the layers have one: the discriminator's as a
    backprop step on the joined batch, the generator's as a step of the chain generator +
    discriminator that updates only the generator's layers
    (:func:`nkernels.trainers.make_trainer`'s ``trainable_layers``). ``compiled=False`` runs
    both layer by layer.

    ``generator`` is an ``nk.Sequential`` whose outputs have the samples' shape (its last
    activation matching their range: a Sigmoid for values in [0, 1]); the discriminator (the
    model given to ``fit``) maps a sample to one logit. ``latent_dim`` defaults to the
    generator's first layer's ``in_features``; given, it must match. Each ``fit`` starts the
    generator from the weights it had when the scheme was made, so a scheme object used twice
    trains as a new one would (``nk.train`` makes a new scheme each call, so calling it again
    continues from the trained generator).

    ``optimizer`` (``"adam"`` by default, with ``betas`` (0.5, 0.999) unless given) and its
    options configure both chains' optimizers; ``lr`` is the discriminator's (by default
    :data:`DEFAULT_LR`, or an optimizer instance's own),
    ``generator_lr`` the generator's (``lr`` by default; a schedule scales both).
    ``steps_per_epoch`` defaults to the full batches of ``X``. Checkpoints hold both chains and
    both optimizers: a resumed run ends bit for bit as an uninterrupted one. The logs give
    ``loss`` (the discriminator's), ``generator_loss``, and ``discriminator_accuracy`` (its
    share of right answers on the joined batch).
    """

    name = "gan"
    capabilities = Capabilities(labels="none", yields=("generator",))
    default_epochs, default_batch_size = 300, 64

    def __init__(self, generator: Any, latent_dim: int | None = None, optimizer: Any = "adam", lr: float | None = None,
                 generator_lr: float | None = None, steps_per_epoch: int | None = None, compiled: bool = True, *,
                 checkpoint_dir: Any = None, resume: bool = False, schedule: Any = None, augment_shift: int = 0,
                 **optimizer_options: Any):
        super().__init__(checkpoint_dir=checkpoint_dir, resume=resume, schedule=schedule, augment_shift=augment_shift)
        if not isinstance(generator, nk.Sequential):
            raise TypeError(f"generator must be an nk.Sequential mapping latent vectors to samples, got {generator!r}")
        if generator.device != "cpu":
            raise ValueError(f"the gan scheme runs on the CPU; the generator is on {generator.device!r} "
                             f"(move it with generator.to('cpu'))")
        width = generator_latent_dim(generator)
        if latent_dim is not None and check_int(latent_dim, "latent_dim") != width:
            raise ValueError(f"latent_dim={latent_dim} does not match the generator, whose first layer takes "
                             f"{width} inputs; drop latent_dim or change the generator")
        self.generator, self.latent_dim = generator, width
        if isinstance(optimizer, str) and optimizer.lower() in ("adam", "adamw"):
            optimizer_options.setdefault("betas", GAN_BETAS)
        if lr is None and isinstance(optimizer, str):
            lr = DEFAULT_LR
        self.optimizer = nk.optimizers.get_optimizer(optimizer, **optimizer_options).fresh(lr)
        lr = self.optimizer.lr
        self.generator_lr = lr if generator_lr is None else check_number(generator_lr, "generator_lr", low=0,
                                                                          low_open=True)
        self.steps_per_epoch = check_int(steps_per_epoch, "steps_per_epoch", allow_none=True)
        self.compiled = check_bool(compiled, "compiled")
        self.loss = nk.losses.get_loss("bce_with_logits")
        self._start = _copy_state(generator)  # each fit starts from here (see the class's docstring)

    # -- setup ---------------------------------------------------------------------------------
    def setup(self, run) -> None:
        G, D = self.generator, run.model
        if np.dtype(G.dtype) != np.dtype(D.dtype):
            raise ValueError(f"the generator is {np.dtype(G.dtype).name} and the discriminator "
                             f"{np.dtype(D.dtype).name}; cast one with .astype()")
        _restore_state(G, self._start)
        z = np.zeros((1, self.latent_dim), G.dtype)
        fake_shape = check_model_input(G, z, "a latent vector")[1:]
        if tuple(fake_shape) != tuple(run.X.shape[1:]):
            raise ValueError(f"the generator makes samples of shape {tuple(fake_shape)}, the data's are "
                             f"{tuple(run.X.shape[1:])}; change the generator's last layer")
        logits = check_model_input(D, run.X)[1:]
        if tuple(logits) != (1,):
            raise ValueError(f"the discriminator must give one logit per sample (outputs (N, 1)), it gives "
                             f"{tuple(logits)} per sample; end it with a Dense(..., 1) and no activation")
        self.batch_size = run.batch_size
        self.steps = self.steps_per_epoch or max(1, run.n_samples // run.batch_size)
        run.optimizer = self.optimizer.fresh()
        self.generator_optimizer = self.optimizer.fresh(self.generator_lr)
        self.discriminator_step = make_trainer(D, self.loss, run.optimizer, run.X.shape[1:], 2 * run.batch_size,
                                               self.compiled)
        chain = nk.Sequential(G.layers + D.layers)  # the same layer objects: no copy, no new weights
        self.generator_step = make_trainer(chain, self.loss, self.generator_optimizer, (self.latent_dim,),
                                           run.batch_size, self.compiled, trainable_layers=range(len(G)))
        self.real_fake_targets = np.concatenate([np.ones((run.batch_size, 1), G.dtype),
                                                 np.zeros((run.batch_size, 1), G.dtype)])
        run.info.update(compiled=not isinstance(self.discriminator_step, LayerwiseTrainer),
                        generator_compiled=not isinstance(self.generator_step, LayerwiseTrainer),
                        latent_dim=self.latent_dim)

    # -- an epoch ------------------------------------------------------------------------------
    def train_epoch(self, run, epoch: int) -> dict[str, Any]:
        with blas_single_threaded():  # the generator's forward pass too, not only the compiled steps
            return self._epoch(run)

    def _epoch(self, run) -> dict[str, Any]:
        G, B, n = self.generator, self.batch_size, run.n_samples
        self.generator_optimizer.lr = run.optimizer.lr * self.generator_lr / self.optimizer.lr  # schedules scale both
        X2d = run.X.reshape(n, -1)
        rows = np.arange(2 * B)
        order = np.concatenate([run.rng.permutation(n) for _ in range(-(-self.steps * B // n))])
        ones = self.real_fake_targets[:B]
        d_losses, g_losses, correct = np.zeros(self.steps), np.zeros(self.steps), 0
        for step in range(self.steps):
            z = run.rng.standard_normal((2, B, self.latent_dim)).astype(G.dtype)
            fake = G.forward(z[0], training=True).reshape(B, -1)
            joined = np.concatenate([X2d[order[step * B:(step + 1) * B]], fake])
            losses, right, done = self.discriminator_step.run(joined, self.real_fake_targets, rows, 0, 1, 2 * B)
            if done < 1:
                raise Diverged("the discriminator's loss became NaN or infinite")
            d_losses[step], correct = losses[0], correct + int(right[0])
            losses, _, done = self.generator_step.run(z[1], ones, rows, 0, 1, B)
            if done < 1:
                raise Diverged("the generator's loss became NaN or infinite")
            g_losses[step] = losses[0]
            if run.events.wants_batches:
                run.events.on_batch_end(step, {"loss": float(d_losses[step]), "generator_loss": float(g_losses[step]),
                                               "size": B})
        return {"loss": float(d_losses.mean()), "generator_loss": float(g_losses.mean()),
                "discriminator_accuracy": correct / (2 * B * self.steps)}

    def validation_metrics(self, run, X_val, y_val) -> dict[str, Any]:
        """The discriminator on held-out data: its mean loss (``loss``) and accuracy
        (``discriminator_accuracy``) on the real samples of ``X_val`` (target 1) together with as many
        samples of the generator (target 0). Their latent vectors come from a fixed seed, so every
        epoch's figures see the same ones and ``run.rng`` is left alone."""
        G, D = self.generator, run.model
        n = len(X_val)
        z = np.random.default_rng(0).standard_normal((n, self.latent_dim)).astype(G.dtype)
        with blas_single_threaded():
            fake = G.forward(z).reshape(X_val.shape)
        targets = np.concatenate([np.ones((n, 1), D.dtype), np.zeros((n, 1), D.dtype)])
        scores = nk.evaluate(D, np.concatenate([X_val, fake]), targets, loss=self.loss)
        return {"loss": scores["loss"], "discriminator_accuracy": scores["accuracy"]}

    # -- state ---------------------------------------------------------------------------------
    def checkpoint_state(self, run) -> tuple[dict[str, Any], dict[str, Any]]:
        G = self.generator
        arrays = {f"generator.param.{k}": v for k, v in G.params.items()}
        arrays.update({f"generator.buffer.{k}": v for k, v in G.buffers.items()})
        optimizer = getattr(self, "generator_optimizer", None)
        state: dict[str, Any] = {}
        if optimizer is not None:
            state = {"generator_optimizer": {"steps": optimizer.steps, "lr": optimizer.lr,
                                             "type": type(optimizer).__name__.lower()}}
            arrays.update({f"generator.optimizer.{slot}.{k}": a for k, named in optimizer.state.items()
                           for slot, a in named.items()})
        return state, arrays

    def restore_state(self, run, state: dict[str, Any], arrays: dict[str, Any]) -> None:
        G, optimizer = self.generator, self.generator_optimizer
        saved = state.get("generator_optimizer")
        if saved is None or saved["type"] != type(optimizer).__name__.lower():
            raise ValueError(f"the checkpoint's generator was trained with "
                             f"{None if saved is None else saved['type']}, not {type(optimizer).__name__.lower()}; "
                             f"resume with the same optimizer")
        G.set_params({k[len("generator.param."):]: v for k, v in arrays.items() if k.startswith("generator.param.")})
        for key, value in G.buffers.items():
            devices.assign(value, arrays[f"generator.buffer.{key}"])
        optimizer.steps, optimizer.lr = int(saved["steps"]), float(saved["lr"])
        params = G.params
        for key in optimizer.state:  # slots the checkpoint predates start again from zero
            for array in optimizer.state[key].values():
                array[...] = 0
        for name, value in arrays.items():
            if name.startswith("generator.optimizer."):
                slot, key = name[len("generator.optimizer."):].split(".", 1)
                optimizer.state_for(key, params[key])[slot][...] = value  # in place: the trainers hold them

    def divergence_hint(self, run) -> str:
        return (f"try smaller learning rates (lr is {run.optimizer.lr:g}, generator_lr "
                f"{self.generator_optimizer.lr:g})")

    def teardown(self, run) -> None:
        for name in ("discriminator_step", "generator_step", "generator_optimizer", "real_fake_targets"):
            vars(self).pop(name, None)  # a scheme object keeps its configuration, not a run's buffers


def _copy_state(model) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    return ({k: np.array(v) for k, v in model.params.items()}, {k: np.array(v) for k, v in model.buffers.items()})


def _restore_state(model, state) -> None:
    params, buffers = state
    model.set_params(params)
    for key, value in model.buffers.items():
        devices.assign(value, buffers[key])
