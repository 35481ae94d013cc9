"""Every GPU figure of issue 25 in one call of about 5 minutes: JSON under $OUT and a table printed last.

    bash benchmarks/gpu/figures.sh            # on the lent GPU (installs the carried wheels first)
    bash benchmarks/gpu/figures.sh --dry      # here, under the CUDA simulator: tiny shapes, a crash test

Sections, each timed against the budget (``--budget`` seconds, 240 by default; a section that would
start after it is recorded as skipped, and the JSON is rewritten after every section, so a run cut
short still leaves its figures):

1. ``copy``: device-to-device copy bandwidth (bytes read + written) on a >= 1 GiB array, through
   numba-cuda and PyTorch: the ceiling of the memory-bound kernels.
2. ``vendor_gemm``: PyTorch's fp32 4096^3 matmul with TF32 off (cuBLAS): the GEMM baseline.
3. ``launch``: the host cost of one numba-cuda launch (an empty kernel, 1 and 8 array arguments).
4. ``memory_bound``: every memory-bound kernel family of ``benchmarks/gpu.py`` on >= 256 MB arrays,
   each as a share of the measured copy bandwidth (target >= 80%).
5. ``gemm``: nkernels' own CUDA GEMM at 4096^3 fp32 (each tile configuration), against the vendor's
   (target >= 50%).
6. ``step_counts``: kernel launches, device allocations, host<->device copies and synchronizations in
   one training step of the digits CNN on the device trainer, per step and per run
   (:func:`nkernels.trainers.device.step_counts`, which hooks numba-cuda's driver).
7. ``steps``: seconds per training step of the digits CNN, LeNet and the transformer preset
   (nkernels' device trainer against PyTorch eager on the same GPU, TF32 off), and one ES generation's
   population evaluation (nkernels_es on "cuda" against the same population in PyTorch eager).
8. ``cuda_graphs``: whether a numba-cuda kernel can be captured in a CUDA graph and replayed (through
   PyTorch's graph capture with numba launching on its stream, and through cuda.core's graph builder).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry", action="store_true", help="tiny shapes under the CUDA simulator (a crash test)")
    p.add_argument("--budget", type=float, default=240.0, help="seconds after which no section starts")
    p.add_argument("--out", default=os.environ.get("OUT", "."), help="folder of figures.json (default $OUT)")
    p.add_argument("--sections", default="", help="comma-separated sections to run (default: all)")
    return p.parse_args(argv)


class Figures:
    """The run: its sections, the rows they produce, and the JSON rewritten after each."""

    def __init__(self, args):
        self.args, self.dry = args, args.dry
        self.start = time.monotonic()
        self.results: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "dry": self.dry, "sections": {}}
        self.path = os.path.join(args.out, "figures.json")

    # -- plumbing ----------------------------------------------------------------------------------
    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.start)

    def section(self, name, fn, needs: float = 10.0):
        """Run ``fn`` when at least ``needs`` seconds of the budget are left; record its result or error."""
        if self.left() < needs:
            self.results["sections"][name] = {"skipped": f"budget: {self.left():.0f} s left, needs ~{needs:.0f} s"}
        else:
            t0 = time.monotonic()
            try:
                self.results["sections"][name] = fn()
            except Exception as exc:  # one broken section never stops the others
                self.results["sections"][name] = {"error": f"{type(exc).__name__}: {exc}",
                                                  "traceback": traceback.format_exc()[-2000:]}
            self.results["sections"][name]["seconds"] = round(time.monotonic() - t0, 1)
        print(f"  {name}: {self.results['sections'][name].get('seconds', 'skipped')} s", file=sys.stderr, flush=True)
        with open(self.path, "w") as f:
            json.dump(self.results, f, indent=1, default=str)

    def torch_cuda(self):
        """PyTorch with CUDA and TF32 off, or None (no PyTorch, or a CPU build, or the dry run)."""
        if self.dry:
            return None
        try:
            import torch
        except ImportError:
            return None
        if not torch.cuda.is_available():
            return None
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch

    @staticmethod
    def events_ms(fn, repeat, inner=1):
        """Median milliseconds of ``fn`` by numba-cuda events (``inner`` calls per sample), after a warm-up."""
        from numba import cuda

        fn()
        cuda.synchronize()
        times = []
        for _ in range(repeat):
            a, b = cuda.event(), cuda.event()
            a.record()
            for _ in range(inner):
                fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / inner)
        return statistics.median(times)

    @staticmethod
    def host_seconds(fn, repeat):
        """Median seconds of ``fn`` (which must wait for the GPU itself), after a warm-up."""
        fn()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    # -- 0. the device ------------------------------------------------------------------------------
    def device(self):
        from numba import cuda

        import numba

        info = {"numba": numba.__version__, "simulator": bool(numba.config.ENABLE_CUDASIM)}
        try:
            import numba_cuda
            info["numba_cuda"] = getattr(numba_cuda, "__version__", "?")
        except ImportError:
            pass
        if not self.dry:
            dev = cuda.get_current_device()
            name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
            info.update(gpu=name, sms=dev.MULTIPROCESSOR_COUNT, cc=list(dev.compute_capability))
        torch = self.torch_cuda()
        if torch is not None:
            info["torch"] = torch.__version__
        return info

    # -- 1. copy bandwidth ----------------------------------------------------------------------------
    def copy(self):
        import numpy as np
        from numba import cuda

        n = 1000 if self.dry else (1 << 30) // 4  # 1 GiB of float32
        src = cuda.to_device(np.random.default_rng(0).standard_normal(n, dtype=np.float32))
        dst = cuda.device_array(n, np.float32)
        ms = self.events_ms(lambda: dst.copy_to_device(src), 3 if self.dry else 20)
        out = {"bytes": 2 * 4 * n, "numba_ms": ms, "numba_gbs": 2 * 4 * n / (ms / 1e3) / 1e9}
        torch = self.torch_cuda()
        if torch is not None:
            a = torch.randn(n, device="cuda")
            b = torch.empty_like(a)
            ms_t = self.events_ms(lambda: b.copy_(a), 20)
            out.update(torch_ms=ms_t, torch_gbs=2 * 4 * n / (ms_t / 1e3) / 1e9)
        out["gbs"] = max(out["numba_gbs"], out.get("torch_gbs", 0.0))
        return out

    # -- 2. vendor GEMM -------------------------------------------------------------------------------
    def vendor_gemm(self):
        torch = self.torch_cuda()
        if torch is None:
            return {"skipped": "no PyTorch with CUDA (or the dry run)"}
        s = 4096
        a, b = torch.randn(s, s, device="cuda"), torch.randn(s, s, device="cuda")
        c = torch.empty(s, s, device="cuda")
        ms = self.events_ms(lambda: torch.matmul(a, b, out=c), 20)
        ref = (a[:64].double() @ b.double())
        err = float((c[:64].double() - ref).norm() / ref.norm())
        return {"size": s, "ms": ms, "tflops": 2 * s ** 3 / (ms / 1e3) / 1e12, "rel_error_vs_fp64": err,
                "allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32)}

    # -- 3. launch overhead ---------------------------------------------------------------------------
    def launch(self):
        import numpy as np
        from numba import cuda

        @cuda.jit
        def empty1(a):
            pass

        @cuda.jit
        def empty8(a, b, c, d, e, f, g, h):
            pass

        arrays = [cuda.to_device(np.zeros(4, np.float32)) for _ in range(8)]
        n = 5 if self.dry else 2000
        out = {}
        for label, fn in (("1 array", lambda: empty1[1, 32](arrays[0])),
                          ("8 arrays", lambda: empty8[1, 32](*arrays))):
            out[label] = {"us_per_launch": self._host_us(fn, n), "launches": n}
        if not self.dry:
            out["routes, 8 arrays"] = self._launch_routes(empty8, arrays, n)
        return out

    @staticmethod
    def _host_us(fn, n, launches_per_call=1):
        """Host microseconds a launch: ``n`` calls of ``fn`` (each ``launches_per_call`` launches) between
        two synchronizations, after a warm-up call."""
        from numba import cuda

        fn()
        cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        cuda.synchronize()
        return (time.perf_counter() - t0) / (n * launches_per_call) * 1e6

    @classmethod
    def _launch_routes(cls, kernel, arrays, n):
        """Host microseconds a launch of ``kernel(*arrays)`` by cheaper routes than ``kernel[g, b](...)``
        (numba-cuda 0.30 internals; each route's error is kept): the compiled overload's ``launch``
        (no dispatch), cuda.core's ``launch`` with the arguments packed once (what a step plan could
        keep), and a CUDA graph of 17 such launches replayed through PyTorch (a digits-CNN step's count)."""
        from numba import cuda

        routes: dict = {}

        def per_launch(fn, launches_per_call=1):
            return cls._host_us(fn, n, launches_per_call)

        try:
            from cuda.core import LaunchConfig, launch
            from numba.cuda.cudadrv import driver

            stream = driver._to_core_stream(0)  # what a plain kernel[g, b](...) launches on
            compiled = next(iter(kernel.overloads.values()))
            routes["overload.launch"] = per_launch(lambda: compiled.launch(arrays, (1, 1, 1), (32, 1, 1), stream))
            packed: list = []
            for ty, value in zip(compiled.argument_types, arrays):
                compiled._prepare_args(ty, value, stream, [], packed)
            config = LaunchConfig(grid=(1, 1, 1), block=(32, 1, 1))
            function = compiled._codelibrary.get_cufunc().kernel
            routes["cuda.core launch, arguments packed once"] = per_launch(
                lambda: launch(stream, config, function, *packed))
        except Exception as exc:  # noqa: BLE001 - a route that breaks is reported, the others run
            routes["error"] = f"{type(exc).__name__}: {exc}"
        try:
            import torch

            graph, side = torch.cuda.CUDAGraph(), torch.cuda.Stream()
            with torch.cuda.stream(side):
                numba_stream = cuda.external_stream(side.cuda_stream)
                with torch.cuda.graph(graph, stream=side):
                    for _ in range(17):
                        kernel[1, 32, numba_stream](*arrays)
            routes["graph replay, per kernel of 17"] = per_launch(graph.replay, 17)
        except Exception as exc:  # noqa: BLE001
            routes["graph error"] = f"{type(exc).__name__}: {exc}"
        return routes

    # -- 4./5. kernels of benchmarks/gpu.py ------------------------------------------------------------
    def _bench(self, families):
        sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
        import gpu

        args = gpu._parse(["--tiny"] if self.dry else ["--mem-mb", "256", "--repeat", "10"])
        bench = gpu.Bench(args)
        done, skipped = [], []
        for family in families:
            if self.left() < 15:
                skipped.append(family)
                continue
            getattr(bench, family)()
            done.append(family)
        return bench.rows, done, skipped

    def memory_bound(self):
        families = ["activation", "dropout", "loss", "optim", "norms", "pool", "batching", "reshape", "augment"]
        rows, done, skipped = self._bench(families)
        copy = self.results["sections"].get("copy", {}).get("gbs")
        for r in rows:
            r["share_of_copy"] = r["gbs"] / copy if copy and r.get("gbs") else None
        return {"copy_gbs": copy, "rows": rows, "families": done, "skipped_for_budget": skipped, "target": 0.8}

    def gemm(self):
        rows, _, _ = self._bench(["dense"])
        vendor = self.results["sections"].get("vendor_gemm", {}).get("tflops")
        for r in rows:
            r["share_of_vendor"] = r["tflops"] / vendor if vendor and r.get("tflops") else None
        return {"vendor_tflops": vendor, "rows": rows, "target": 0.5}

    # -- 6. per-step counts ---------------------------------------------------------------------------
    def step_counts(self):
        from nkernels.cli import bench as B
        from nkernels.trainers.device import step_counts

        case = B.CASES["mlp" if self.dry else "cnn"]  # the simulator runs the CNN's step for over a minute
        X, y = B.data(case, 4)
        counts = step_counts(case.build(), X, y, batch_size=case.batch_size, batches=4, optimizer="adam")
        return {"model": case.name, **counts, "counter": "nkernels.runtime.counting.count_device_work"}

    # -- 7. training steps against PyTorch eager -------------------------------------------------------
    def steps(self):
        from nkernels.cli import bench as B

        names = ["mlp"] if self.dry else ["cnn", "lenet", "transformer"]
        n_steps, repeat = (1, 1) if self.dry else (20, 7)
        rows = []
        torch = self.torch_cuda()
        for name in names:
            if self.left() < 25:
                rows.append({"model": name, "skipped": "budget"})
                continue
            case = B.CASES[name]
            row = {"model": name, "batch": case.batch_size}
            rows.append(row)
            try:  # a row that breaks keeps its error; the other rows still run
                row["nkernels_ms"] = B.nkernels_step(case, n_steps, repeat, device="cuda") * 1e3
                if torch is not None:
                    row["torch_ms"] = B.torch_step(case, n_steps, repeat, device="cuda") * 1e3
                    row["speedup_vs_torch"] = row["torch_ms"] / row["nkernels_ms"]
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
                row["traceback"] = traceback.format_exc()[-2000:]
        if self.left() >= 15:
            try:
                rows.append(self.es_population(torch))
            except Exception as exc:
                rows.append({"model": "es population", "error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc()[-2000:]})
        return {"rows": rows, "targets": {"cnn": 2.0, "lenet": 1.5}}

    def es_population(self, torch):
        """One generation's population losses: a digits MLP 64-128-10, 256 members, a minibatch of 32."""
        import numpy as np

        import nkernels as nk
        from nkernels.losses import SoftmaxCrossEntropy
        from nkernels_es.noise import NoiseTable
        from nkernels_es.population import flat_parameters, make_problem

        pairs, batch, n = (2, 3, 8) if self.dry else (128, 32, 1797)
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, 64)).astype(np.float32)
        y = rng.integers(0, 10, n)
        model = nk.Sequential([nk.layers.Dense(64, 128), nk.layers.ReLU(), nk.layers.Dense(128, 10)], seed=0)
        theta, layout = flat_parameters(model)
        loss = SoftmaxCrossEntropy()
        problem = make_problem(model.copy().to("cuda"), layout, X, loss.prepare_targets(y, (n, 10), np.float32),
                               loss)
        noise = NoiseTable(1, max(2**20, 16 * theta.size), np.float32)
        offsets = noise.sample_offsets(rng, pairs, theta.size)
        rows = np.sort(rng.choice(n, batch, replace=False))
        sigma = 0.03
        repeat = 1 if self.dry else 30
        ours = self.host_seconds(lambda: problem.losses(theta, noise, offsets, sigma, rows), repeat)
        row = {"model": f"es population {2 * pairs} x MLP 64-128-10, batch {batch}", "nkernels_ms": ours * 1e3}
        if torch is not None:
            dev = "cuda"
            t_theta = torch.from_numpy(theta).to(dev)
            t_table = torch.from_numpy(np.asarray(noise.table)).to(dev)
            t_off = torch.from_numpy(offsets).to(dev)
            t_X, t_y = torch.from_numpy(X).to(dev), torch.from_numpy(y).to(dev)
            t_rows = torch.from_numpy(rows).to(dev)
            idx = t_off[:, None] + torch.arange(theta.size, device=dev)[None, :]
            ce = torch.nn.functional.cross_entropy

            def eager():
                eps = t_table[idx]
                members = torch.cat([t_theta + sigma * eps, t_theta - sigma * eps])  # (2P, D)
                w1 = members[:, :128 * 64].view(-1, 128, 64)
                b1 = members[:, 128 * 64:128 * 65]
                w2 = members[:, 128 * 65:128 * 65 + 1280].view(-1, 10, 128)
                b2 = members[:, 128 * 65 + 1280:]
                xb, yb = t_X[t_rows], t_y[t_rows]
                h = torch.relu(torch.einsum("bi,moi->mbo", xb, w1) + b1[:, None, :])
                logits = torch.einsum("mbi,moi->mbo", h, w2) + b2[:, None, :]
                losses = ce(logits.reshape(-1, 10), yb.repeat(len(members)), reduction="none")
                return losses.view(len(members), -1).mean(1).cpu()

            theirs = self.host_seconds(eager, repeat)
            row.update(torch_ms=theirs * 1e3, speedup_vs_torch=theirs / ours)
        return row

    # -- 8. CUDA graphs -------------------------------------------------------------------------------
    def cuda_graphs(self):
        if self.dry:
            return {"skipped": "no graphs under the simulator"}
        import numpy as np
        from numba import cuda

        @cuda.jit
        def add_one(a):
            i = cuda.grid(1)
            if i < a.size:
                a[i] += 1

        out = {}
        torch = self.torch_cuda()
        if torch is not None:
            try:
                t = torch.zeros(1024, device="cuda")
                a = cuda.as_cuda_array(t)
                add_one[4, 256](a)  # compile and load the module outside the capture
                torch.cuda.synchronize()
                graph, stream = torch.cuda.CUDAGraph(), torch.cuda.Stream()
                with torch.cuda.stream(stream):
                    numba_stream = cuda.external_stream(stream.cuda_stream)
                    with torch.cuda.graph(graph, stream=stream):
                        add_one[4, 256, numba_stream](a)
                        add_one[4, 256, numba_stream](a)
                t.zero_()
                for _ in range(5):
                    graph.replay()
                torch.cuda.synchronize()
                value = float(t[0])
                out["torch_capture"] = {"works": value == 10.0, "value_after_5_replays_of_2_kernels": value}
            except Exception as exc:
                out["torch_capture"] = {"works": False, "error": f"{type(exc).__name__}: {exc}"}
        try:
            try:  # cuda-core >= 0.4 (the lent H200's image, 2026-12-04, has no .experimental any more)
                from cuda.core import Device
            except ImportError:
                from cuda.core.experimental import Device

            dev = Device()
            dev.set_current()
            stream = dev.create_stream()
            a = cuda.to_device(np.zeros(1024, np.float32))
            add_one[4, 256](a)
            cuda.synchronize()
            a.copy_to_device(np.zeros(1024, np.float32))
            builder = stream.create_graph_builder()
            builder.begin_building()
            add_one[4, 256, builder](a)
            graph = builder.end_building().complete()
            for _ in range(3):
                graph.launch(stream)
            stream.sync()
            value = float(a.copy_to_host()[0])
            out["cuda_core_builder"] = {"works": value == 3.0, "value_after_3_replays": value}
        except Exception as exc:
            out["cuda_core_builder"] = {"works": False, "error": f"{type(exc).__name__}: {exc}"}
        return out

    # -- the table ------------------------------------------------------------------------------------
    def table(self) -> str:
        S = self.results["sections"]
        lines = [f"GPU figures ({'DRY RUN under the simulator: numbers mean nothing' if self.dry else 'measured'})",
                 f"device: {S.get('device', {})}"]

        def get(name, *keys):
            v = S.get(name, {})
            for k in keys:
                v = v.get(k, {}) if isinstance(v, dict) else {}
            return v if not isinstance(v, dict) else None

        lines.append(f"copy bandwidth: numba {get('copy', 'numba_gbs')} GB/s, torch {get('copy', 'torch_gbs')} GB/s")
        lines.append(f"vendor fp32 GEMM 4096^3 (TF32 off): {get('vendor_gemm', 'tflops')} TFLOP/s")
        for label, v in (S.get("launch") or {}).items():
            if isinstance(v, dict) and "us_per_launch" in v:
                lines.append(f"launch overhead ({label}): {v.get('us_per_launch'):.2f} us")
            elif isinstance(v, dict):
                lines.append(f"launch {label}: {v}")
        for r in (S.get("memory_bound") or {}).get("rows", []):
            share = r.get("share_of_copy")
            lines.append(f"  {r['family']:<10} {r['kernel'][:34]:<34} {r['gbs'] or 0:9.0f} GB/s "
                         f"{'' if share is None else f'{100 * share:5.0f}% of copy'}")
        for r in (S.get("gemm") or {}).get("rows", []):
            share = r.get("share_of_vendor")
            lines.append(f"  gemm {r['kernel'][:44]:<44} {r['tflops'] or 0:7.2f} TFLOP/s "
                         f"{'' if share is None else f'{100 * share:5.0f}% of vendor'}")
        counts = S.get("step_counts") or {}
        lines.append(f"per step ({counts.get('model')}, {counts.get('counter')}): {counts.get('per_step')}")
        for r in (S.get("steps") or {}).get("rows", []):
            lines.append(f"  step {r.get('model')}: nkernels {r.get('nkernels_ms')} ms, torch {r.get('torch_ms')} ms, "
                         f"x{r.get('speedup_vs_torch')}" + (f" !! {r['error']}" if "error" in r else ""))
        lines.append(f"cuda graphs: {S.get('cuda_graphs')}")
        for name, v in S.items():
            if isinstance(v, dict) and ("error" in v or "skipped" in v):
                lines.append(f"!! {name}: {v.get('error') or v.get('skipped')}")
        return "\n".join(lines)




def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.dry:
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported
    sys.path.insert(0, ROOT)
    for plugin in ("nkernels-es", "nkernels-kmeans"):
        sys.path.insert(0, os.path.join(ROOT, "plugins", plugin))
    os.makedirs(args.out, exist_ok=True)
    figs = Figures(args)
    if not args.dry:
        from numba import config, cuda

        if config.ENABLE_CUDASIM or not cuda.is_available():
            print("no usable CUDA GPU (or NUMBA_ENABLE_CUDASIM is set): use --dry for the simulator", file=sys.stderr)
            return 1
    wanted = {x.strip() for x in args.sections.split(",") if x.strip()}
    for name, needs in (("device", 0), ("copy", 5), ("vendor_gemm", 5), ("launch", 5), ("cuda_graphs", 5),
                        ("step_counts", 15), ("steps", 40), ("gemm", 20), ("memory_bound", 20)):
        if not wanted or name in wanted or name == "device":
            figs.section(name, getattr(figs, name), needs=needs)
    print(figs.table())
    print(f"figures: {figs.path}")
    errors = [n for n, v in figs.results["sections"].items() if "error" in v]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
