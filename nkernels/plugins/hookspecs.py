"""The hook specifications of nkernels: every extension point a plugin can implement.

A plugin is any module or object with functions marked ``@nkernels.hookimpl`` whose names match
the specs below. Install it as an entry point of the group ``nkernels``::

    [project.entry-points.nkernels]
    my-plugin = "my_plugin"

The built-in layers, schemes, extractors, datasets, kernels and ONNX exporters register through these
same hooks.
Hooks are called with keyword arguments only, and specs only ever gain arguments.
"""
import pluggy

hookspec = pluggy.HookspecMarker("nkernels")


@hookspec
def nkernels_register_layers():
    """Return a mapping from registry name to :class:`nkernels.layers.Layer` subclass.

    Example::

        import nkernels as nk

        class Square(nk.layers.Layer):
            def forward(self, x, training=False):
                self.x = x
                return x * x

            def backward(self, dy):
                return 2 * self.x * dy

        @nk.hookimpl
        def nkernels_register_layers():
            return {"square": Square}

    Afterwards ``nk.registry.layers["square"] is Square`` and models holding a ``Square``
    save and load by that name.
    """


@hookspec
def nkernels_register_schemes():
    """Return a mapping from scheme name to :class:`nkernels.schemes.Scheme` subclass.

    A scheme writes its setup and its epoch and inherits the rest from the toolkit (checkpoints,
    validation, callbacks, schedules, early stopping, the divergence guard; see
    ``docs/write-a-scheme.md``). Example::

        import nkernels as nk

        class RandomSearch(nk.schemes.Scheme):
            name = "random-search"
            capabilities = nk.schemes.Capabilities(learning_rate=False, batches=False)

            def __init__(self, sigma=0.01, **toolkit_options):
                super().__init__(**toolkit_options)   # checkpoint_dir, resume ...
                self.sigma = sigma

            def train_epoch(self, run, epoch):
                ...  # perturb the weights (draw from run.rng), keep the better ones
                return nk.evaluate(run.model, run.X, run.y, loss=run.loss)

        @nk.hookimpl
        def nkernels_register_schemes():
            return {"random-search": RandomSearch}

    Then ``nk.train(model, X, y, scheme="random-search", sigma=0.1)`` passes ``sigma`` to the
    constructor and the training arguments to ``fit``.
    """


@hookspec
def nkernels_register_losses():
    """Return a mapping from loss name to :class:`nkernels.losses.Loss` subclass.

    The loss describes its passes once (``passes()``: kernel calls writing the batch's mean to
    ``LOSSES[INDEX]``), so it trains on the compiled path too. Example::

        import nkernels as nk
        from nkernels.passes import DX, INDEX, LOSSES, TARGET, X, Call, LossPasses

        class MAE(nk.losses.Loss):  # mean absolute error
            def prepare_targets(self, targets, output_shape, dtype):
                return nk.losses.MSE().prepare_targets(targets, output_shape, dtype)

            def passes(self):
                return LossPasses(forward=(Call("mae_forward_into", X.flat, TARGET.flat, LOSSES, INDEX),),
                                  backward=(Call("mae_backward", X.flat, TARGET.flat, DX.flat),))

        @nk.hookimpl
        def nkernels_register_losses():
            return {"mae": MAE}

    with ``mae_forward_into`` and ``mae_backward`` registered through
    :func:`nkernels_register_kernels`. Then ``nk.train(model, X, y, loss="mae")`` uses it, and
    ``nk.registry.losses["mae"] is MAE``.
    """


@hookspec
def nkernels_register_extractors():
    """Return a mapping from extractor name to a class with ``fit(X, y=None)`` and ``transform(X)``.

    Example::

        import numpy as np
        import nkernels as nk

        class Standardize:
            def fit(self, X, y=None):
                self.mean_, self.std_ = X.mean(0), X.std(0) + 1e-8
                return self

            def transform(self, X):
                return (X - self.mean_) / self.std_

        @nk.hookimpl
        def nkernels_register_extractors():
            return {"standardize": Standardize}
    """


@hookspec
def nkernels_register_datasets():
    """Return a mapping from dataset name to a loader.

    A loader takes keyword arguments, usually ``flat`` (bool: vectors rather than images) and
    ``seed``, and others it needs (the built-in ``mnist`` takes ``path``); it returns
    ``(X_train, y_train, X_test, y_test)`` as NumPy arrays. ``nk.datasets.load(name, **options)``
    passes the caller's options and refuses, naming the loader's, one it does not take.

    Example::

        import numpy as np
        import nkernels as nk

        def load_xor(flat=True, seed=0):
            X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
            y = np.array([0, 1, 1, 0])
            return X, y, X, y

        @nk.hookimpl
        def nkernels_register_datasets():
            return {"xor": load_xor}

    ``nkernels train --data xor`` then trains on it.
    """


@hookspec
def nkernels_register_kernels():
    """Return a list of :class:`nkernels.plugins.kernels.KernelRecord` offering alternative kernels.

    A record names the op (for example ``"dense_forward"``), the device (``"cpu"`` or
    ``"cuda"``), the function, and a priority. The built-in kernels have priority 0; a plugin
    kernel replaces the built-in only with a higher priority, and two records with the same op,
    device and priority from different plugins are a :class:`~nkernels.errors.PluginConflictError`.
    The function must keep the built-in kernel's signature.

    Example::

        import numpy as np
        from numba import njit
        import nkernels as nk
        from nkernels.plugins.kernels import KernelRecord

        @njit(cache=True)
        def relu_forward_branchless(x, out):
            for i in range(x.shape[0]):
                out[i] = max(x[i], 0.0)

        @nk.hookimpl
        def nkernels_register_kernels():
            return [KernelRecord("relu_forward", "cpu", relu_forward_branchless, priority=10)]
    """


@hookspec
def nkernels_register_exporters():
    """Return a mapping from layer (or extractor) to ONNX exporter, so that ``nk.export_onnx`` can write it.

    A key is a layer's registry name (``"leaky_relu"``) or a class; an exporter applies to that
    exact class only (a subclass needs its own). An exporter is called as
    ``exporter(layer, graph, x, input_shape)``: ``graph`` is an
    :class:`nkernels.export.onnx_export.OnnxGraph`, ``x`` the name of the layer's input in the graph,
    and ``input_shape`` its shape (batch first). It adds nodes with ``graph.node(...)`` and
    weights with ``graph.weight(...)`` (stored in the model's float dtype), and returns the name
    of the layer's output; ``graph.export(obj, x, input_shape, scope=graph.fresh("inner") + "/")``
    writes another layer, a ``Sequential`` or an extractor with the exporter registered for it
    (the greedy plugin's extractors write their ``to_layers()`` that way). Import ``onnx`` only
    inside the exporter (``graph`` needs none of it), so that loading the plugin stays cheap
    without the ``onnx`` extra.

    Example::

        import nkernels as nk

        def export_square(layer, graph, x, input_shape):
            return graph.node("Mul", [x, x])

        def export_scale(layer, graph, x, input_shape):
            return graph.node("Mul", [x, graph.weight(layer.params["scale"], "scale")])

        @nk.hookimpl
        def nkernels_register_exporters():
            return {"square": export_square, Scale: export_scale}

    Then ``nk.export_onnx(model, "model.onnx", input_shape=(1, 8))`` writes models holding a
    ``Square`` or a ``Scale`` layer; a layer without an exporter is a clear error naming it.

    **Extractors.** ``nk.layers.Frozen(extractor)`` is exported by the exporter registered for
    the extractor's class: Frozen's own exporter dispatches to it, with the extractor in place of
    the layer, and the graph must compute what ``extractor.transform`` computes. Extractors are
    keyed by class, never by their extractor registry name (a string key names a layer). A frozen
    ``Sequential`` needs nothing: its layers are written inline by their own exporters. With the
    ``Standardize`` extractor of :func:`nkernels_register_extractors`::

        def export_standardize(extractor, graph, x, input_shape):
            centered = graph.node("Sub", [x, graph.weight(extractor.mean_, "mean")])
            return graph.node("Div", [centered, graph.weight(extractor.std_, "std")])

        @nk.hookimpl
        def nkernels_register_exporters():
            return {Standardize: export_standardize}

    Then ``nk.export_onnx(nk.Sequential([nk.layers.Frozen(Standardize().fit(X)),
    nk.layers.Dense(8, 2)]), "model.onnx", input_shape=(1, 8))`` works, and without the
    exporter it raises a NoExporterError naming the extractor. The k-means extractors
    (``nkernels_kmeans.exporters``) and the greedy plugin's ``autoencoder`` and ``rbm`` are
    exported this way.
    """


@hookspec
def nkernels_on_train_begin(model, scheme, params):
    """Observe the start of a training run.

    ``params`` is a dict of the run's settings (epochs, batch_size, ...). Example::

        @nk.hookimpl
        def nkernels_on_train_begin(model, scheme, params):
            print(f"training {len(model)} layers with {type(scheme).__name__}", params)
    """


@hookspec
def nkernels_on_epoch_end(model, epoch, logs):
    """Observe the end of an epoch (or a generation, or an iteration, as the scheme defines it).

    ``epoch`` counts from 0; ``logs`` maps metric names to this epoch's values. Example::

        @nk.hookimpl
        def nkernels_on_epoch_end(model, epoch, logs):
            with open("train.log", "a") as f:
                f.write(f"{epoch} {logs['loss']:.4f}\\n")
    """


@hookspec
def nkernels_on_batch_end(model, batch, logs):
    """Observe the end of a mini-batch step. Schemes fire it only when someone listens.

    ``batch`` counts from 0 within the epoch. Example::

        @nk.hookimpl
        def nkernels_on_batch_end(model, batch, logs):
            if batch % 100 == 0:
                print(batch, logs["loss"])
    """


@hookspec
def nkernels_on_train_end(model, history):
    """Observe the end of a training run; ``history`` maps metric names to per-epoch lists.

    Example::

        @nk.hookimpl
        def nkernels_on_train_end(model, history):
            print("final loss", history["loss"][-1])
    """
