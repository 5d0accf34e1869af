"""Run: one training run stepped in this process (tiny models, a few steps, 1 thread)."""

import math

import pytest
import torch
from tiny import cfgs, tiny_data  # noqa: E402

from seq2seq.config import TrainConfig
from seq2seq.model import Seq2Seq
from seq2seq.training import GROUPS, Curves, Run, UnrolledRNN, _as_ids, timestep_grad_norms

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return tiny_data(n_valid=60)


def train(run: Run, max_steps: int = 10_000) -> Run:
    for _ in range(max_steps):
        if run.done:
            break
        run.step()
    return run


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers,bi", [(1, False), (2, False), (1, True), (2, True)])
def test_unrolled_encoder_matches_fused(data, cell, layers, bi):
    torch.manual_seed(0)
    mc, _ = cfgs(data, cell=cell, layers=layers, bidirectional=bi, attention="dot")
    model = Seq2Seq(mc).eval()
    src = torch.tensor([[5, 6, 7, 8, 9], [7, 5, 6, 0, 0], [9, 0, 0, 0, 0]])
    src_len = torch.tensor([5, 3, 1])
    with torch.no_grad():
        ref = model.encode(src, src_len)
        fused = model.enc_rnn
        model.enc_rnn = UnrolledRNN(fused, cell)
        got = model.encode(src, src_len)
        model.enc_rnn = fused
    assert torch.allclose(got.enc_out, ref.enc_out, atol=1e-5)
    for a, b in zip(got.state0 if cell == "lstm" else [got.state0], ref.state0 if cell == "lstm" else [ref.state0]):
        assert torch.allclose(a, b, atol=1e-5)
    assert set(model.state_dict()) == set(Seq2Seq(mc).state_dict())  # the probe left the model as it was


def test_timestep_grad_norms_shape_and_vanishing(data):
    """One value per source timestep; for a plain RNN with tiny recurrent weights the gradient reaching early
    timesteps (through many steps of recurrence) is far smaller than at the last one: vanishing gradients."""
    torch.manual_seed(0)
    mc, _ = cfgs(
        data, cell="rnn", hidden=16, bidirectional=False, attention="none"
    )  # one direction: the gradient flows back only
    model = Seq2Seq(mc)
    with torch.no_grad():
        model.enc_rnn.weight_hh_l0.mul_(0.1)
    src = torch.randint(4, mc.src_vocab_size, (4, 8))
    src_len = torch.tensor([8, 8, 8, 8])
    tgt = torch.randint(4, mc.tgt_vocab_size, (4, 5))
    g = timestep_grad_norms(model, src, src_len, tgt, tgt)
    assert len(g) == 8 and all(math.isfinite(v) and v >= 0 for v in g)
    assert g[0] < 1e-3 * g[-1]
    assert model.training  # mode restored


def test_step_metrics_and_groups(data):
    mc, tc = cfgs(data, cell="lstm", bidirectional=True, attention="additive")
    run = Run(data, mc, tc)
    m = run.step()
    assert m["step"] == 1 and math.isfinite(m["train_loss"]) and m["grad_norm"] > 0
    assert set(m["grad_norms"]) == set(GROUPS)  # every group is present in this model
    total = math.sqrt(sum(v * v for v in m["grad_norms"].values()))
    assert total == pytest.approx(m["grad_norm"], rel=1e-4)


def test_run_trains_finishes_and_reports(data):
    mc, tc = cfgs(data, cell="gru", attention="dot", epochs=3)
    run = train(Run(data, mc, tc))
    s = run.snapshot()
    assert s["status"] == "finished" and s["progress"] == 1.0 and "3 epochs" in s["message"]
    assert s["step"] == 3 * run.steps_per_epoch
    h = s["history"]
    assert len(h["train_loss"]) == s["step"] and h["train_loss"][-1] < h["train_loss"][0]
    assert len(h["exact_match"]) == len(h["valid_loss"]) >= 2 and 0 <= h["exact_match"][-1] <= 1
    assert s["last_eval"]["n"] == len(data.valid)  # the final evaluation uses the whole split
    assert len(s["timestep_grad_norms"]) == max(len(src) for src, _ in data.valid[:32])
    assert len(s["samples"]) == 6 and all(len(row) == 3 for row in s["samples"])
    assert s["samples"][0][0] == data.valid[0][0] and s["samples"][0][2] == data.valid[0][1]


def test_same_seed_same_loss_curve(data):
    """Reproducible: same seed and config -> the same losses; another seed -> different ones. Dropout and
    teacher forcing < 1 draw random numbers, so they are on here."""

    def losses(seed):
        mc, tc = cfgs(data, cell="lstm", layers=2, dropout=0.2, teacher_forcing=0.5, seed=seed, epochs=1)
        run = Run(data, mc, tc)
        return [run.step()["train_loss"] for _ in range(6)]

    a, b, c = losses(1), losses(1), losses(2)
    assert a == b and a != c


def test_interleaved_runs_stay_reproducible(data):
    """Two runs stepped in turn (as a worker does) give the same losses as each run alone."""
    mc, tc = cfgs(data, cell="gru", dropout=0.3, teacher_forcing=0.5, epochs=1)
    alone = Run(data, mc, tc)
    ref = [alone.step()["train_loss"] for _ in range(5)]
    r1, r2 = Run(data, mc, tc), Run(data, mc, TrainConfig(**{**tc.to_dict(), "seed": 9}))
    got = []
    for _ in range(5):
        got.append(r1.step()["train_loss"])
        r2.step()
    assert got == ref


def test_nan_loss_diverges_with_message(data):
    mc, tc = cfgs(data, lr=5.0, clip=0.0)
    sd = Seq2Seq(mc).state_dict()
    sd["out.bias"][:] = float("nan")
    run = Run(data, mc, tc, state_dict=sd)
    assert run.step() == {}
    assert run.status == "diverged" and run.done
    assert "NaN at step 1" in run.message and "learning rate 5" in run.message and "clipping" in run.message
    assert run.step() == {}  # stepping a diverged run is a no-op, never an exception


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_divergence_preset_diverges(data, cell):
    """The documented way to make a run diverge on purpose (docs/DESIGN.md): SGD, lr 1000, clipping off. Saturating
    cells keep the loss finite, so the run stops on the exploded-loss rule within a few steps."""
    mc, tc = cfgs(data, cell=cell, attention="additive", optimizer="sgd", lr=1000.0, clip=0.0, eval_every=1000)
    run = train(Run(data, mc, tc), max_steps=10)
    assert run.status == "diverged" and run.step_count < 10
    assert "exploded" in run.message and "learning rate 1000" in run.message and "clipping" in run.message


def test_default_settings_do_not_trip_divergence(data):
    mc, tc = cfgs(data, cell="lstm", hidden=32, epochs=3)
    run = train(Run(data, mc, tc))
    assert run.status == "finished"


def test_error_in_step_becomes_status(data, monkeypatch):
    mc, tc = cfgs(data)
    run = Run(data, mc, tc)

    def boom(*a, **k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(run.model, "forward", boom)
    run.step()
    assert run.status == "error" and "kaboom" in run.message


def test_time_budget_and_cap(data):
    mc, tc = cfgs(data, epochs=None, max_seconds=0.3)
    run = train(Run(data, mc, tc))
    assert run.status == "finished" and 0.3 <= run.seconds < 3 and "time budget" in run.message
    mc, tc = cfgs(data, epochs=1000)
    run = train(Run(data, mc, tc, time_cap=0.2))
    assert run.status == "finished" and "SEQ2SEQ_MAX_TRAIN_SECONDS" in run.message


def test_pause_stop_extend(data):
    mc, tc = cfgs(data, epochs=1)
    run = Run(data, mc, tc)
    run.step()
    run.pause()
    assert run.status == "paused" and run.step() == {} and run.step_count == 1
    run.resume()
    train(run)
    assert run.status == "finished" and run.epoch == pytest.approx(1)
    run.extend(epochs=1)
    assert run.status == "paused" and run.progress() == 0
    run.resume()
    train(run)
    assert run.status == "finished" and run.epoch == pytest.approx(2)
    run.extend(seconds=10)
    run.resume()
    run.step()
    run.stop()
    assert run.status == "stopped" and "Stopped" in run.message


def test_state_dict_continues_training(data):
    mc, tc = cfgs(data, epochs=1)
    a = train(Run(data, mc, tc))
    b = Run(data, mc, tc, state_dict=a.state_dict())
    for k, v in a.state_dict().items():
        assert torch.equal(b.model.state_dict()[k], v)


def test_curves_thin_to_cap():
    c = Curves(("step", "train_loss"), cap=10)
    for i in range(1, 1001):
        c.add({"step": i, "train_loss": float(i)})
    n = len(c.data["step"])
    assert 5 <= n < 10 and c.data["step"] == sorted(c.data["step"])
    # each point is the mean of the losses it summarises: for a line y = step, about step - (stride - 1) / 2
    assert c.data["train_loss"][0] == pytest.approx(c.data["step"][0] - (c.stride - 1) / 2)


def test_as_ids_cuts_after_eos():
    out = torch.tensor([[5, 6, 2, 7, 7], [5, 2, 2, 0, 0]])
    assert _as_ids(out, 4).tolist() == [[5, 6, 2, 0], [5, 2, 0, 0]]
    assert _as_ids(torch.tensor([[5, 2]]), 4).tolist() == [[5, 2, 0, 0]]


def test_lr_halving_schedule(data):
    mc, tc = cfgs(data, lr=0.01, lr_schedule="halving", lr_half_life=4)
    run = Run(data, mc, tc)
    for _ in range(8):
        run.step()
    assert run.last["lr"] == pytest.approx(0.01 * 0.5 ** (7 / 4))  # step 8 is optimizer step k = 7
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(run.last["lr"])
    mc, tc = cfgs(data, lr=0.01, lr_schedule="constant")
    run = Run(data, mc, tc)
    for _ in range(8):
        run.step()
    assert run.last["lr"] == run.optimizer.param_groups[0]["lr"] == 0.01


def test_lr_plateau_has_a_floor(data):
    from seq2seq.training import PLATEAU_FLOOR

    mc, tc = cfgs(data, lr=0.01, lr_schedule="plateau", lr_patience=1)
    run = Run(data, mc, tc)
    run._plateau(1.0)
    for _ in range(40):  # step_count stays 0, so the spacing rule never holds it back
        run._plateau(2.0)
    assert run.lr_now == pytest.approx(0.01 * PLATEAU_FLOOR) == run.optimizer.param_groups[0]["lr"]


def test_lr_plateau_spaces_its_halvings(data):
    from seq2seq.training import PLATEAU_SPACING

    mc, tc = cfgs(data, lr=0.01, lr_schedule="plateau", lr_patience=1)
    run = Run(data, mc, tc)
    run._plateau(1.0)
    run.step_count = 100
    run._plateau(1.0)  # no progress: halve (step 100)
    assert run.lr_now == 0.005
    run.step_count = int(100 * PLATEAU_SPACING) - 1
    run._plateau(1.0)  # no progress again, but too soon after the last halving: wait
    assert run.lr_now == 0.005
    run.step_count = int(100 * PLATEAU_SPACING)
    run._plateau(1.0)
    assert run.lr_now == 0.0025


def test_lr_plateau_schedule_halves_only_after_patience(data):
    mc, tc = cfgs(data, lr=0.01, lr_schedule="plateau", lr_patience=2)
    run = Run(data, mc, tc)
    for loss in (1.0, 0.9):  # new bests: the rate stays
        run._plateau(loss)
    assert run.lr_now == 0.01
    run._plateau(0.95)  # one evaluation without a new best: not yet
    assert run.lr_now == 0.01
    run._plateau(0.91)  # two in a row: halve, and the optimizer uses it
    assert run.lr_now == 0.005 == run.optimizer.param_groups[0]["lr"]
    run._plateau(0.92)
    run._plateau(0.89)  # a new best resets the count
    run._plateau(0.9)
    assert run.lr_now == 0.005
    for _ in range(2 * tc.eval_every):  # and it is wired to the periodic evaluations
        run.step()
    assert run.last["lr"] == run.lr_now and run.eval_curves.data["step"]


@pytest.mark.parametrize("bucket", [True, False])
def test_epoch_batches_cover_every_example_once(data, bucket):
    mc, tc = cfgs(data, batch_size=8, bucket_by_length=bucket)
    run = Run(data, mc, tc)
    batches = run._epoch_batches()
    assert len(batches) == run.steps_per_epoch  # the same number of steps per epoch either way
    assert sorted(torch.cat(batches).tolist()) == list(range(run.train_split.n))
    assert sum(len(b) != 8 for b in batches) <= 1  # full batches but one (the remainder)
    spread = [int(run.train_split.src_len[b].max() - run.train_split.src_len[b].min()) for b in batches]
    if bucket:  # batches of (nearly) one source length: most have none to pad
        assert sum(s == 0 for s in spread) >= len(batches) // 2, spread
    assert [b.tolist() for b in run._epoch_batches()] != [b.tolist() for b in batches]  # a new order every epoch


@pytest.mark.parametrize("att", ["none", "dot"])
def test_exact_match_from_teacher_forcing_equals_greedy_decoding(data, att):
    """evaluate() reads exact match off the teacher-forced pass; it must equal decoding every example greedily."""
    from seq2seq.decoding import greedy_batch

    mc, tc = cfgs(data, cell="gru", hidden=32, attention=att, epochs=None, max_seconds=600, eval_every=10_000)
    run = Run(data, mc, tc)
    seen = set()
    for steps in (0, 100, 200, 400):
        while run.step_count < steps and not run.done:
            run.step()
        got = run.evaluate("valid")
        enc = run.valid_split
        src, src_len, _, tgt_out = enc.batch(torch.arange(enc.n))
        ids = _as_ids(greedy_batch(run.model, src, src_len, tgt_out.shape[1] - 1), tgt_out.shape[1])
        assert got["exact_match"] == pytest.approx((ids == tgt_out).all(1).float().mean().item())
        seen.add(round(got["exact_match"], 3))
    assert len(seen) > 1  # the check ran on models that got different fractions right


def test_precision_auto_follows_the_cpu_and_bf16_trains_in_fp32_weights(data, monkeypatch):
    """ "auto" is bf16 exactly where the CPU has native bf16; a bf16 run keeps fp32 weights and gradients, learns,
    evaluates in fp32 (the same numbers as evaluating its weights in an fp32 run), and reports its precision."""
    from seq2seq import training

    for native in (True, False):
        monkeypatch.setattr(training, "native_bf16", lambda native=native: native)
        assert training.resolve_precision("auto") == ("bf16" if native else "fp32")
    assert training.resolve_precision("fp32") == "fp32" and training.resolve_precision("bf16") == "bf16"
    for cell in ("gru", "lstm"):
        mc, tc = cfgs(data, cell=cell, attention="dot", bidirectional=True, precision="bf16", epochs=2)
        run = train(Run(data, mc, tc))
        assert run.precision == run.snapshot()["precision"] == "bf16" and run.model.lowp == torch.bfloat16
        assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in run.model.parameters())
        h = run.snapshot()["history"]["train_loss"]
        ref = train(Run(data, mc, TrainConfig(**{**tc.to_dict(), "precision": "fp32"})))
        h_ref = ref.snapshot()["history"]["train_loss"]
        assert h[-1] < h[0] and h[-1] == pytest.approx(h_ref[-1], rel=0.05)  # the same learning, up to rounding
        fp32 = Run(data, mc, TrainConfig(**{**tc.to_dict(), "precision": "fp32"}), state_dict=run.state_dict())
        assert fp32.model.lowp is None and fp32.evaluate() == run.evaluate()


def test_training_steps_flush_denormals_and_restore(data, monkeypatch):
    """Denormal floats count as zero inside a step (x86 computes on them ~100x slower), and only there."""
    mc, tc = cfgs(data)
    run = Run(data, mc, tc)
    seen, real = [], run._step
    monkeypatch.setattr(run, "_step", lambda: seen.append((torch.tensor([1e-39]) * 1.0).item()) or real())
    run.step()
    if torch.set_flush_denormal(False):  # the CPU supports flushing (x86 with SSE3)
        assert seen == [0.0]
    assert (torch.tensor([1e-39]) * 1.0).item() != 0.0


# ------------------------------------------------------------------------------------ own generators, best, resume
RUN_KW = [
    dict(cell="gru", seed=1),
    dict(cell="lstm", layers=2, dropout=0.3, seed=2),
    dict(cell="gru", dropout=0.2, teacher_forcing=0.5, seed=3),
    dict(cell="rnn", attention="dot", seed=4),
]


def test_runs_created_at_once_in_threads_equal_runs_created_one_by_one(data):
    """Each run draws from its own generators: four runs created and stepped at the same time in four threads
    give exactly the losses and weights of the same runs created and stepped one by one."""
    import threading

    def make_and_step(kw, out, barrier=None):
        mc, tc = cfgs(data, epochs=1, **kw)
        if barrier is not None:
            barrier.wait()
        run = Run(data, mc, tc)
        out["losses"] = [run.step()["train_loss"] for _ in range(6)]
        out["weights"] = run.state_dict()

    alone = [{} for _ in RUN_KW]
    for kw, out in zip(RUN_KW, alone):
        make_and_step(kw, out)
    together = [{} for _ in RUN_KW]
    barrier = threading.Barrier(len(RUN_KW))
    threads = [
        threading.Thread(target=make_and_step, args=(kw, out, barrier), name=f"run-{i}")
        for i, (kw, out) in enumerate(zip(RUN_KW, together))
    ]
    torch.manual_seed(123)  # the process-wide generator's state plays no part
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for a, b in zip(alone, together):
        assert a["losses"] == b["losses"]
        assert all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])
    assert len({tuple(a["losses"]) for a in alone}) == len(RUN_KW)


def test_initial_weights_equal_the_seeded_global_generator_ones(data):
    """model.build replays the constructors' draws from the run's generator: the same weights as before it."""
    from seq2seq.model import build

    for kw in RUN_KW:
        mc, _ = cfgs(data, **kw)
        torch.manual_seed(kw["seed"])
        ref = Seq2Seq(mc).state_dict()
        got = build(mc, torch.Generator().manual_seed(kw["seed"])).state_dict()
        assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_a_run_that_got_worse_says_so_and_keeps_its_best_weights(data):
    """SGD at lr 50 (issue 19): the loss ends far above where it started, not exploded, so not "diverged"; the run
    says it got worse, and its best weights are those of its best evaluation (here: the untrained model)."""
    from seq2seq.training import EVAL_EXAMPLES

    mc, tc = cfgs(data, cell="gru", optimizer="sgd", lr=50, epochs=4, attention="none")  # as the issue found it
    run = train(Run(data, mc, tc))
    s = run.snapshot()
    assert s["status"] == "finished" and "got worse" in s["message"] and "lr" not in s["message"]
    worse = s["worse"]
    assert worse["loss"] > 1.5 * worse["lowest_loss"] and s["last_eval"]["loss"] == worse["loss"]
    assert s["best"]["step"] == worse["best_step"] == 0 and "before training" in s["message"]
    best = Run(data, mc, tc, state_dict=run.best_state_dict()).evaluate("valid", EVAL_EXAMPLES)
    assert best["loss"] == pytest.approx(s["best"]["loss"], rel=1e-6)  # the weights are the best evaluation's
    assert run.evaluate("valid", EVAL_EXAMPLES)["loss"] > 1.5 * best["loss"]  # ... not the last step's
    good = train(Run(data, *cfgs(data, cell="gru", attention="dot", epochs=3)))
    g = good.snapshot()
    assert g["worse"] is None and "got worse" not in g["message"] and g["best"]["step"] > 0
    assert g["best"]["exact_match"] == g["best_exact_match"]


def test_training_state_continues_the_run_exactly(data):
    """A run saved mid-epoch (through the checkpoint files) and continued gives exactly the losses, curves and
    weights of the same run trained without a stop; dropout and teacher forcing on."""
    from seq2seq import checkpoint as C

    mc, tc = cfgs(data, cell="lstm", layers=2, dropout=0.2, teacher_forcing=0.7, epochs=2, lr_schedule="plateau")
    straight = Run(data, mc, tc)
    ref = [m.get("train_loss") for m in iter(lambda: straight.step(), {})]
    first = Run(data, mc, tc)
    got = [first.step()["train_loss"] for _ in range(13)]  # mid-epoch, between evaluations
    first.stop()
    ck = C.Checkpoint(
        model=Seq2Seq(mc),
        model_cfg=mc,
        train_cfg=tc,
        tokens=data.tokens,
        src_vocab=data.src_vocab,
        tgt_vocab=data.tgt_vocab,
        training=first.training_state(),
    )
    ck.model.load_state_dict(first.best_state_dict())
    back = C.from_files(C.to_files(ck), training=True)
    second = Run(data, mc, tc)
    second.load_training_state(back.training, back.model.state_dict())
    assert second.status == "stopped" and second.step_count == 13
    second.extend(epochs=second.max_epochs - second.epoch)
    second.resume()
    got += [m.get("train_loss") for m in iter(lambda: second.step(), {})]
    assert got == ref and second.status == straight.status == "finished"
    a, b = straight.snapshot(), second.snapshot()
    for k in ("step", "best", "best_exact_match", "samples", "timestep_grad_norms"):
        assert a[k] == b[k], k
    assert {**a["last_eval"], "seconds": 0} == {**b["last_eval"], "seconds": 0}  # wall-clock time differs
    assert {k: v for k, v in a["history"].items() if k not in ("seconds", "eval_seconds")} == {
        k: v for k, v in b["history"].items() if k not in ("seconds", "eval_seconds")
    }
    assert all(torch.equal(straight.state_dict()[k], second.state_dict()[k]) for k in straight.state_dict())
    assert all(torch.equal(straight.best_state_dict()[k], second.best_state_dict()[k]) for k in ck.model.state_dict())
    other = tiny_data(n_valid=50)  # other data: refused, saying so
    with pytest.raises(ValueError, match="training data differ"):
        Run(other, mc, tc).load_training_state(back.training)


def test_early_stopping_counts_evaluations_without_a_new_best_exact_match_or_loss(data):
    mc, tc = cfgs(data, epochs=None, stop_patience=3)
    run = Run(data, mc, tc)
    for r in (
        {"exact_match": 0.1, "loss": 2.0},
        {"exact_match": 0.1, "loss": 1.9},  # a new best loss: progress
        {"exact_match": 0.2, "loss": 1.95},
    ):  # a new best exact match (loss worse): progress
        run._track_progress(r)
    assert run._evals_without_progress == 0
    for _ in range(2):
        run._track_progress({"exact_match": 0.2, "loss": 1.9})  # ties are not progress
    assert run._evals_without_progress == 2 and run._budget_reason() is None
    run._track_progress({"exact_match": 0.15, "loss": 2.5})
    assert "stopped improving" in run._budget_reason()


def test_early_stopping_ends_a_run_without_an_epoch_or_time_budget(data, monkeypatch):
    mc, tc = cfgs(data, epochs=None, max_seconds=None, stop_patience=2)
    run = Run(data, mc, tc)
    real = run.evaluate
    monkeypatch.setattr(
        run,
        "evaluate",
        lambda split="valid", limit=None, *a: (
            dict(  # injected: a flat score
                real(split, limit, *a), exact_match=0.5, loss=1.0
            )
            if limit
            else real(split, limit, *a)
        ),
    )
    train(run, max_steps=200)
    assert run.status == "finished" and "stopped improving" in run.message
    # progress at the first evaluation, then 2 without: the run ends at the step after the third evaluation
    assert run.step_count == 3 * tc.eval_every + 1
    run.extend()  # continue: the count starts again, the budget is again "until it stops improving"
    run.resume()
    train(run, max_steps=200)
    assert run.status == "finished" and run.step_count == 5 * tc.eval_every + 1


def test_a_run_needs_some_budget():
    with pytest.raises(ValueError, match="stop patience"):
        TrainConfig(epochs=None, max_seconds=None, stop_patience=0).validate()
    assert TrainConfig(epochs=None, max_seconds=None).validate().stop_patience > 0  # the default: until it stops
