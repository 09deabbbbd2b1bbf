"""Preflight: what a study will cost, printed before any work (and alone with ``emergelab study --dry-run``).

``plan(spec, lay, stages)`` counts the units each stage has left, sizes the data and checkpoints,
estimates the peak memory of the largest unit and the wall time from this machine's calibration, and
refuses — one line with the numbers and the fix — a study that would not fit on the disk or in memory.
Nothing is written to the study directory (the calibration is cached under ``~/.cache/emergelab``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from emergelab.layout import Layout
from emergelab.models import checkpoint as ckpt
from emergelab.preflight.calibrate import calibrate
from emergelab.preflight.estimate import (
    BASE_RSS,
    START_S,
    WorldFacts,
    approx_params,
    available_memory,
    check_fits,
    checkpoint_bytes,
    data_bytes,
    fmt_bytes,
    fmt_seconds,
    free_disk,
    n_checkpoints,
    prepare_peak_bytes,
    stage_seconds,
    state_bytes,
    train_peak_bytes,
)
from emergelab.spec import StudySpec
from emergelab.stages import explain as explain_stage
from emergelab.stages import report as report_stage
from emergelab.stages.base import part_is_current
from emergelab.stages.finetune import missing as finetune_missing
from emergelab.stages.mechanism import study_links, testable_links
from emergelab.stages.prepare import is_prepared
from emergelab.stages.train import rung_trained
from emergelab.worlds import TextWorld, world_for_spec

STAGE_ORDER = ("prepare", "train", "evaluate", "probe", "mechanism", "finetune", "explain", "report")


@dataclass
class Plan:
    """The preflight's numbers; ``lines()`` says them."""

    units: dict[str, int]
    data_bytes: int
    n_checkpoints: int
    checkpoint_bytes: int
    state_bytes: int
    peak_memory: int
    peak_what: str
    seconds: dict[str, float] = field(default_factory=dict)
    calibration: str = ""
    free_disk: int = 0
    available_memory: int = 0
    #: the training precision and why (``train.bf16: auto`` depends on the machine), when training is left
    precision: str = ""

    @property
    def disk_bytes(self) -> int:
        return self.data_bytes + self.checkpoint_bytes + self.state_bytes

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values()) + (START_S if any(self.units.values()) else 0.0)

    def lines(self) -> list[str]:
        units = ", ".join(f"{k} {v}" for k, v in self.units.items())
        out = [f"preflight: units of work: {units}",
               f"preflight: disk {fmt_bytes(self.disk_bytes)} (prepared data {fmt_bytes(self.data_bytes)}, "
               f"{self.n_checkpoints:,} checkpoints {fmt_bytes(self.checkpoint_bytes)}, optimizer state "
               f"{fmt_bytes(self.state_bytes)}) of {fmt_bytes(self.free_disk)} free",
               f"preflight: peak memory {fmt_bytes(self.peak_memory)} ({self.peak_what}) of "
               f"{fmt_bytes(self.available_memory)} available"]
        if self.seconds:
            parts = ", ".join(f"{k} {fmt_seconds(v)}" for k, v in self.seconds.items() if v >= 0.05)
            out.append(f"preflight: estimated wall time {fmt_seconds(self.total_seconds)} ({parts}); {self.calibration}")
        if self.precision:
            out.append(f"preflight: training in {self.precision}")
        return out


def world_facts(spec: StudySpec, lay: Layout) -> WorldFacts:
    """Vocabulary, task answer lengths and latents: from the prepared data, else from the world (a text
    world is not read here: its corpus may be large, so it gets the tokenizer's vocabulary and one task)."""
    tasks_of = (lambda names: [n for n in names if n in spec.eval.tasks]) if spec.eval.tasks else list
    latents_of = (lambda names: [n for n in names if n in spec.probe.latents]) if spec.probe.latents else list
    if lay.data_dir.exists():
        man = lay.data_dir.manifest()
        latents = latents_of(list(man["latents"]))
        names = tasks_of(list(man["tasks"]))
        prompts = [sum(len(e["prompt"]) + len(e["target"]) for e in ex) / max(1, len(ex))
                   for ex in (lay.data_dir.task(t)[:16] for t in names)]
        return WorldFacts(man["vocab_size"], [man["tasks"][t]["answer_length"] for t in names], prompts,
                          max(1, min(2, len(latents))), max(1, len(latents)))
    if spec.world == TextWorld.name:
        return WorldFacts(spec.tokenizer.vocab_size, [1], [spec.train.seq_len], 1, 1)
    world = world_for_spec(spec)
    drawn = world.tasks(4)
    tasks = {ts.name: ts.answer_length for ts in drawn}
    prompt = {ts.name: sum(len(e.prompt) + len(e.target) for e in ts.examples) / max(1, len(ts.examples)) for ts in drawn}
    latents = {ls.name: ls.input_ids.tobytes() for ls in world.latents(4, spec.train.seq_len)}
    chosen = latents_of(list(latents))
    names = tasks_of(list(tasks))
    return WorldFacts(world.id_offset + len(world.symbols), [tasks[t] for t in names], [prompt[t] for t in names],
                      max(1, len({latents[n] for n in chosen})), max(1, len(chosen)))


def n_links(spec: StudySpec, lay: Layout) -> int:
    """The mechanism links the stage will test: the prepared data's, else the world's and the spec's
    (before preparing; the same filter: linked tasks evaluated, latents probed, head scores of a causal model)."""
    if spec.world is None or not spec.mechanism.enabled:
        return 0
    if lay.data_dir.exists():
        return len(study_links(spec, lay))
    if spec.world == TextWorld.name:
        return len(spec.mechanisms or [])
    world = world_for_spec(spec)
    links = [m.as_dict() for m in world.mechanisms()] + [m.model_dump() for m in spec.mechanisms or []]
    latents = set(world.labelled_tasks()) | {ls.name for ls in world.latents(2, spec.train.seq_len)}
    return len(testable_links(spec, links, {ts.name for ts in world.tasks(2)}, latents))


def _checkpoint_units(spec: StudySpec, lay: Layout, source: str) -> dict[str, int]:
    """Per run (rung × seed), the checkpoints whose ``source`` part is missing or stale (once trained)."""
    out = {}
    for rung, seed in spec.runs():
        run, n = spec.run_name(rung.name, seed), 0
        for step in spec.checkpoint_steps():
            path = lay.checkpoint(run, step)
            sha = ckpt.read_manifest(path).get("weights_sha256", "") if (path / "checkpoint.json").exists() else None
            n += sha is None or not part_is_current(lay.part(source, run, step), {"checkpoint": sha})
        if n:
            out[run] = n
    return out


def units_left(spec: StudySpec, lay: Layout, stages: list[str]) -> dict[str, dict[str, int]]:
    """Per stage and run (a rung × seed, by its directory name; "" for whole-study units), the units that will run."""
    out: dict[str, dict[str, int]] = {s: {} for s in STAGE_ORDER}
    if "prepare" in stages and not is_prepared(lay.data, spec):
        out["prepare"] = {"": 1}
    if "train" in stages:
        runs = [spec.run_name(r.name, s) for r, s in spec.runs()]
        out["train"] = {run: 1 for run in runs if not rung_trained(spec, lay, run)}
    for stage, source in (("evaluate", "eval"), ("probe", "probe")):
        if stage in stages:
            out[stage] = _checkpoint_units(spec, lay, source)
    if "evaluate" in stages and not lay.part("eval", "_task").exists():
        out["evaluate"][""] = 1
    if "mechanism" in stages and n_links(spec, lay):
        out["mechanism"] = _checkpoint_units(spec, lay, "mechanism")
    if "finetune" in stages:
        for u in finetune_missing(spec, lay):
            out["finetune"][u.group] = out["finetune"].get(u.group, 0) + 1
    earlier = any(out[s] for s in STAGE_ORDER[:STAGE_ORDER.index("explain")])
    for stage in ("explain", "report"):
        if stage in stages and (earlier or not _current(spec, lay, stage)):
            out[stage] = {"": 1}
    return out


def _current(spec: StudySpec, lay: Layout, stage: str) -> bool:
    return not {"explain": explain_stage, "report": report_stage}[stage].STAGE.todo(spec, lay)


def plan(spec: StudySpec, lay: Layout, stages: list[str], *, use_cache: bool = True) -> Plan:
    """The preflight's numbers; raises a one-line UserError for a study that cannot fit. Sizes and the
    memory check come from closed forms first, so an impossible spec is refused before anything is built."""
    units = units_left(spec, lay, stages)
    facts = world_facts(spec, lay)
    facts.n_links = n_links(spec, lay)
    counts = {s: sum(v.values()) for s, v in units.items() if s in stages}
    params = {r.name: approx_params(r.d_model, r.n_layer, r.d_ff, vocab_size=facts.vocab_size, seq_len=spec.train.seq_len,
                                    causal=spec.causal) for r in spec.ladder}
    rung_of = {spec.run_name(r.name, s): r.name for r, s in spec.runs()}
    new_ckpts = {run: n_checkpoints(spec) for run in units["train"]}
    data = data_bytes(spec, facts) * len(spec.replicate_seeds()) if units["prepare"] else 0
    ck_bytes = sum(new_ckpts[run] * checkpoint_bytes(params[rung_of[run]], facts.vocab_size) for run in new_ckpts)
    st_bytes = sum(state_bytes(params[rung_of[run]]) for run in new_ckpts)
    peak, what = _peak(spec, facts, {run: params[rung_of[run]] for run in rung_of}, units, rung_of)
    check_fits(spec, lay, need_disk=data + ck_bytes + st_bytes, need_memory=peak, what_memory=what)
    needs_models = any(units[s] for s in ("train", "evaluate", "probe", "finetune"))
    timing, source, took = calibrate(spec, facts.vocab_size, use_cache=use_cache) if needs_models else ({}, "", 0.0)
    if timing and units["train"]:  # the measured peak of a worker training the largest rung
        largest, n = spec.rungs_by_size()[0].name, min(spec.train.workers, len(units["train"]))  # rung's timing
        if timing[largest]["peak_rss"] * n > peak:
            peak, what = timing[largest]["peak_rss"] * n, f"{n} worker(s) training, the largest {largest}"
        check_fits(spec, lay, need_disk=0, need_memory=peak, what_memory=what)
    seconds = stage_seconds(spec, facts, {run: timing[rung_of[run]] for run in rung_of}, units,
                            {run: spec.rung(rung_of[run]) for run in rung_of}) if timing else {}
    how = (f"calibrated on this machine in {took:.1f} s (cached for the next runs)" if source == "measured"
           else "from this machine's cached calibration") if timing else ""
    return Plan({s: counts[s] for s in STAGE_ORDER if s in counts}, data, sum(new_ckpts.values()), ck_bytes, st_bytes,
                peak, what, {s: seconds[s] for s in STAGE_ORDER if s in seconds and s in stages}, how,
                free_disk(lay.root), available_memory(), _precision(spec) if units["train"] else "")


def _precision(spec: StudySpec) -> str:
    from emergelab.train.accel import training_precision  # torch: only when there is training left

    line = training_precision(spec.train.bf16, spec.train.device)
    if spec.executor == "ray":
        line += "; on this machine — each Ray task decides on its own and records it in the checkpoint manifest"
    return line


def _peak(spec: StudySpec, facts: WorldFacts, params: dict[str, int], units: dict, rung_of: dict[str, str]) -> tuple[int, str]:
    """The largest memory any stage needs at once, from closed forms: preparing the data, or the workers training."""
    peak, what = (prepare_peak_bytes(spec), "preparing the data") if units["prepare"] else (BASE_RSS, "a worker")
    if units["train"]:
        run = max(units["train"], key=lambda r: params[r])  # params are keyed by run (``<rung>@seed<k>``)
        largest = spec.rung(rung_of[run])
        n = min(spec.train.workers, len(units["train"]))
        train = n * train_peak_bytes(params[run], spec, largest.d_model, largest.n_layer, largest.n_head,
                                     facts.vocab_size)
        if train > peak:
            peak, what = train, f"{n} worker(s) training, the largest {largest.name}"
    return peak, what
