"""The explanations of docs/scaling.md, written from the model's numbers (bench/scaling/study.py)."""


def why_target(d, comps, shapes, nets, M, fmt, one, p8, t8, f8):
    s, c = shapes["17b-sparse-q8"], comps["17b-sparse-q8"]
    net = nets["10gbit"]
    target = 0.3 * one
    best = t8 if t8 else p8
    met = best and best["latency_ms"] <= target
    d("**%s.** The target is %s ms per token (0.3 x %s ms). " % (
        "Met" if met else "Missed", fmt(target), fmt(one)) + (
        "The best grid as built reaches %s ms (%.2f x)." % (fmt(best["latency_ms"]), best["latency_ms"] / one)
        if best else ""))
    d()
    d("Why, term by term (10 GbE, 8 nodes):")
    d()
    d("- *A pipeline cannot make one stream faster*: a token still visits all 14 layers in turn,")
    d("  so 8 stages cost one node's compute plus 8 hops (%s ms)." % (fmt(p8["latency_ms"]) if p8 else "-"))
    if t8:
        head = c.part.get("output layer", 0)
        T = t8["T"]
        lay1 = M.shard_layer_ms(s, c, 1)
        layT = M.shard_layer_ms(s, c, T)
        d("- *The grid as built (%d x %d)* divides what the kinds split: a layer goes from %s ms to" % (
            t8["P"], T, fmt(lay1, 3)))
        d("  %s ms on one of %d ranks (%.0f%% of it does not shrink: the halo modules, S/T + 2 of S," % (
            fmt(layT, 3), T, 100 * M.shard_layer_ms(s, c, 10 ** 6) / layT if layT else 0))
        d("  the FF controller, the norms and residuals), and adds %s ms of collectives per layer." % fmt(
            t8["collectives_ms_per_layer"], 3))
        d("  The output layer (%s ms, %d%% of one node's token) and the sampler run whole on rank 0:" % (
            fmt(head), round(100 * head / one)))
        d("  alone they are %.2f x one node's time." % ((head + c.part.get("sampling", 0)) / one))
    if f8:
        d("- *What would reach it*: splitting the output layer by vocabulary slices (each rank")
        d("  V/T rows, then the top candidates or the logit slices gathered to rank 0) and the")
        d("  remaining kinds (\"every kind split\", %d x %d): %s ms, %.2f x one node." % (
            f8["P"], f8["T"], fmt(f8["latency_ms"]), f8["latency_ms"] / one))
        d("  The largest piece that does not shrink today is Sparse FF's controller: its second")
        d("  matrix (r x F, f32) is most of the FF's bytes, and every rank reads it whole although")
        d("  a rank only needs the logits of its own blocks — splitting it by blocks is exact and")
        d("  needs no collective. Then the halo modules of Sparse QKV (recomputed instead of")
        d("  exchanged). Batching several sessions per frame raises throughput, not")
        d("  single-stream latency.")


def why_network(d, study, LINKS, fmt, nets):
    if "17b-sparse-q8" not in study:
        return
    d("On the best grid as built for 17b-sparse q8, compute against everything the network adds")
    d("(hops, mirrors to partners, collectives), ms per token:")
    d()
    d("| N | " + " | ".join("compute / network %s" % lab for l, lab in LINKS
                           if l in study["17b-sparse-q8"]) + " |")
    d("|---|" + "---|" * len(study["17b-sparse-q8"]))
    for N in (1, 2, 4, 8, 16, 32, 64):
        cells = []
        for link, _ in LINKS:
            if link not in study["17b-sparse-q8"]:
                continue
            _, tp, _ = study["17b-sparse-q8"][link]
            r = dict(tp).get(N)
            cells.append("%s / %s (%dx%d)" % (fmt(r["compute_ms"]), fmt(r["network_ms"], 2), r["P"], r["T"])
                         if r else "-")
        d("| %d | %s |" % (N, " | ".join(cells)))
    d()
    for link, label in LINKS:
        if link not in study["17b-sparse-q8"]:
            continue
        _, tp, _ = study["17b-sparse-q8"][link]
        cross = next((N for N, r in tp if r["network_ms"] >= r["compute_ms"]), None)
        share8 = dict(tp).get(8)
        d("- %s: the network %s%s." % (
            label,
            "passes compute at N = %d" % cross if cross else "stays below compute up to N = 64",
            "; at 8 nodes it is %d%% of the token" % round(100 * share8["network_ms"] / share8["latency_ms"])
            if share8 else ""))
    d()
    n10 = nets.get("10gbit")
    if n10:
        d("Why: a pipeline hop carries one 36.9 KB frame per stage and token: %s µs at 10 GbE"
          % fmt(n10.hop_us(36880, 2, False), 0))
        d("when the receiving rank is polling, %s µs when it has waited over 2 ms and sleeps in"
          % fmt(n10.hop_us(36880, 2, True), 0))
        d("the transport's back-off (100 µs naps; a nap takes about twice that on this virtual")
        d("machine) — which is the case for every stage of a 17b pipeline, since each waits for")
        d("the others' compute. Against a 17b-sparse token of tens of ms that is a few per cent")
        d("per stage, so pipelines stay compute-bound. Tensor parallelism adds two allgathers per")
    else:
        d("Why: tensor parallelism adds two allgathers per")
    d("layer and token (14 layers: 28 collective latencies of log2 T rounds each, every round")
    d("paying the link's one-way delay and the MPI software path) while the compute they")
    d("serve shrinks by 1/T: the network share grows with T, and on 1 GbE (60 µs delay and")
    d("8 µs per KB on the wire) it overtakes compute first. The output layer on rank 0 does")
    d("not shrink at all, so past a few nodes added ranks buy only collectives.")


def why_throughput(d, comps, shapes, nets, M, fmt):
    if "17b-sparse-q8" not in comps or not nets.get("10gbit"):
        return
    s, c, net = shapes["17b-sparse-q8"], comps["17b-sparse-q8"], nets["10gbit"]
    d("Several sessions keep every stage busy: a pipeline of P stages then works on up to P")
    d("tokens at once, and throughput grows with P until the slowest stage — rank 0, which adds")
    d("the output layer and the sampler to its layers — bounds it. Predicted tokens/s, 10 GbE")
    d("(pipeline, T = 1):")
    d()
    d("| sessions | " + " | ".join("N = %d" % N for N in (1, 2, 4, 8, 15)) + " |")
    d("|---|" + "---|" * 5)
    for S in (1, 4, 16, 64):
        d("| %d | %s |" % (S, " | ".join(fmt(M.predict(s, c, net, N, 1, S, real_network=True)["tokens_per_s"])
                                         for N in (1, 2, 4, 8, 15))))
    d()
    d("The plan balances weight bytes (`--balance memory`, the default); `--balance time` gives")
    d("rank 0 fewer layers and raises the bound. Frames carry one session's row each, so the")
    d("per-token work of a stage does not shrink with more sessions (batched decoding in the")
    d("pipeline is not built).")


def why_validation(d, rows, fmt):
    """What the validation errors say, by group."""
    def grp(pred):
        g = [r for r in rows if pred(r)]
        return g, (max(g, key=lambda r: abs(r["err"])) if g else None)

    groups = [
        ("the whole 17b-sparse q8 model (14 layers, 18.5 GB) on this host, 1 to 8 ranks "
         "(2 and more: pipeline stages, 4 and 8 oversubscribed on the 2 cores with one session, "
         "so one rank computes at a time)", lambda r: r["config"].startswith("17b-whole")),
        ("the 17b-sparse q8 2-layer slice on this host (1 and 2 ranks, a core each)",
         lambda r: r["config"].startswith("17b-slice-local")),
        ("the 17b slice on 3 simulated hosts (36.9 KB frames over TCP)",
         lambda r: r["config"].startswith("17b-slice-sim")),
        ("the bundled model (d = 192, 0.3 ms tokens) on 3 simulated hosts, where the hops are "
         "most of the token", lambda r: r["config"].startswith("bundled-sim")),
        ("the bundled model on this host", lambda r: r["config"].startswith("bundled-local")),
    ]
    for label, pred in groups:
        g, worst = grp(pred)
        if not g:
            continue
        d("- %s: errors %s (largest %+.1f%%, %s)." % (
            label, ", ".join("%+.0f%%" % (100 * r["err"]) for r in g), 100 * worst["err"],
            worst["config"]))
