#!/usr/bin/env bash
# sparsetf-gen: deterministic output, --layers slices, and clear errors; sparsetf-dist: clear
# errors for bad models and prompts (exit status and the message's key words).
#   gen_cli.sh GEN DIST WORKDIR
set -uo pipefail
gen=$1 dist=$2 work=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fails=0 passes=0
check() { # name, condition result
  if [ "$2" -eq 0 ]; then echo "ok   $1"; passes=$((passes + 1)); else echo "FAIL $1"; fails=$((fails + 1)); fi
}
expect_fail() { # name, needle, command...
  local name=$1 needle=$2; shift 2
  out=$("$@" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -qF -- "$needle" <<<"$out"; then echo "ok   $name"; passes=$((passes + 1)); else
    echo "FAIL $name (exit $rc): expected \`$needle\` in: $out"; fails=$((fails + 1)); fi
}

"$gen" --preset tiny-sparse-sru --seed 7 --out a.stf 2>/dev/null
"$gen" --preset tiny-sparse-sru --seed 7 --out b.stf 2>/dev/null
"$gen" --preset tiny-sparse-sru --seed 8 --out c.stf 2>/dev/null
cmp -s a.stf b.stf; check "same seed, same bytes" $?
! cmp -s a.stf c.stf; check "other seed, other bytes" $?

# a --layers slice holds exactly the first layers of the full model
printf 'n_layers = 4\n' > four.cfg
"$gen" --preset tiny-sparse --config four.cfg --seed 3 --out full.stf 2>/dev/null
"$gen" --preset tiny-sparse --config four.cfg --seed 3 --layers 2 --out slice.stf 2>/dev/null
/usr/bin/python3 - full.stf slice.stf <<'PY'
import sys
sys.path.insert(0, __import__("os").environ["STF_SOURCE_DIR"] + "/tests/reference")
import reference as r
fcfg, full, _ = r.load_model(sys.argv[1])
pcfg, part, _ = r.load_model(sys.argv[2])
assert pcfg["n_layers"] == 2 and fcfg["n_layers"] == 4, (pcfg, fcfg)
names = list(part)
assert any(n.startswith("layers.1.") for n in names) and not any(n.startswith("layers.2.") for n in names)
for n in names:
    assert (full[n] == part[n]).all(), n
print("slice tensors equal:", len(names))
PY
check "--layers 2 equals the first two layers" $?

expect_fail "gen: unknown preset" "unknown preset \`nope\`" "$gen" --preset nope --out x.stf
expect_fail "gen: bad config value" "bad.cfg:1: \`d_model\` must be a non-negative integer" \
  bash -c "printf 'd_model = big\n' > bad.cfg; '$gen' --config bad.cfg --out x.stf"
expect_fail "gen: invalid config" "n_heads (3) must divide d_model (64)" \
  bash -c "printf 'n_heads = 3\n' > h.cfg; '$gen' --preset tiny-dense --config h.cfg --out x.stf"
expect_fail "gen: --layers too large" "exceeds the config's 2 layers" "$gen" --preset tiny-dense --layers 5 --out x.stf
expect_fail "gen: unwritable output" "cannot create" "$gen" --preset tiny-dense --out /nonexistent/dir/x.stf
[ ! -e x.stf ] && [ ! -e x.stf.partial ]; check "gen: no partial file left behind" $?
"$gen" --list-presets | grep -q "^17b-sparse "; check "gen: --list-presets" $?
"$gen" --help | grep -q -- "--layers K"; check "gen: --help" $?

expect_fail "dist: missing model" "nope.stf: cannot open" "$dist" --model nope.stf --prompt-tokens "1 2"
head -c 1000 a.stf > trunc.stf
expect_fail "dist: truncated model" "trunc.stf: file is truncated" "$dist" --model trunc.stf --prompt-tokens "1 2"
expect_fail "dist: token out of range" "out of range for a vocabulary of 512" "$dist" --model a.stf --prompt-tokens "1 999"
expect_fail "dist: not a token" "is not a token id" "$dist" --model a.stf --prompt-tokens "1 two"
expect_fail "dist: empty prompt" "empty" "$dist" --model a.stf --prompt-tokens " "
expect_fail "dist: prompt longer than the context" "exceeds the context" "$dist" --model a.stf --prompt-tokens "1 2 3" --max-tokens 200
expect_fail "dist: bad temperature" "--temperature" "$dist" --model a.stf --prompt-tokens "1" --temperature -1
expect_fail "dist: bad top-p" "--top-p must be in (0, 1]" "$dist" --model a.stf --prompt-tokens "1" --top-p 0
expect_fail "dist: --ctx 0" "--ctx must be at least 1" "$dist" --model a.stf --prompt-tokens "1" --ctx 0
expect_fail "dist: fault on a missing rank" "rank 99 does not exist, the job has 1 rank" \
  "$dist" --model a.stf --prompt-tokens "1 2" --fault-inject kill-rank=99,after=0
expect_fail "dist: rank over its memory" "a.stf: this rank needs about" \
  env STF_MEMORY_LIMIT=200K "$dist" --model a.stf --prompt-tokens "1 2"
expect_fail "dist: unknown option" "unknown option" "$dist" --model a.stf --bogus
"$dist" --help | grep -q -- "--prompt-tokens"; check "dist: --help" $?
out=$("$dist" --model a.stf --prompt-tokens "1 2 3" --max-tokens 5 --temperature 0 --print-tokens 2>/dev/null)
[ "$(wc -w <<<"$out")" -ge 1 ]; check "dist: generates tokens" $?

echo "gen_cli: $passes passed, $fails failed"
[ $fails -eq 0 ]
