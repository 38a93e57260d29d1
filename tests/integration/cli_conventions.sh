#!/usr/bin/env bash
# cli_conventions: what users of llama.cpp-style tools expect, on every program —
# --version and -h everywhere; sparsetf-dist's short flags give exactly the long flags'
# output; a prompt from a file (-f, several lines) or standard input (-p -, --prompts -)
# equals the same text given inline; sparsetf-tok reads the tokenizer embedded in a .stf
# (ids equal those of the .model file it was made from); bad names and inconsistent inputs
# are errors up front, naming the value (bench sizes/variants before its STREAM run,
# gen --tokenizer, dist --ranks without --plan, an out-of-range prompt id).
#
# usage: cli_conventions.sh TOOLS_DIR SOURCE_DIR WORKDIR
set -uo pipefail
tools=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
model=$src/src/train/models/default-sparse.stf spm=$src/src/train/models/spm8k.model
dist=$tools/sparsetf-dist
fails=0 passes=0
check() { # name, status
    if [ "$2" -eq 0 ]; then echo "ok   $1"; passes=$((passes + 1)); else echo "FAIL $1"; fails=$((fails + 1)); fi
}
expect_fail() { # name, needle, command...
    local name=$1 needle=$2 out rc
    shift 2
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -ne 0 ] && grep -qF -- "$needle" <<< "$out"; then
        echo "ok   $name: $(head -1 <<< "$out")"
        passes=$((passes + 1))
    else
        echo "FAIL $name (exit $rc): expected \`$needle\` in: $out"
        fails=$((fails + 1))
    fi
}
for t in sparsetf-dist sparsetf-gen sparsetf-quantize sparsetf-tok sparsetf-bench sparsetf-tok-bench sparsetf-info \
    sparsetf-batch-bench sparsetf-netbench; do
    v=$("$tools/$t" --version 2> /dev/null)
    [[ $v == "$t "[0-9]* ]]
    check "$t --version ($v)" $?
    "$tools/$t" -h 2> /dev/null | grep -q "usage"
    check "$t -h" $?
done

gen() { "$dist" --model "$model" --max-tokens 12 --seed 5 --quiet "$@"; }
long=$(gen --prompt "It is a truth" --ctx 64 --threads 1 2> /dev/null)
short=$("$dist" -m "$model" -p "It is a truth" -n 12 -s 5 -c 64 -t 1 --quiet 2> /dev/null)
[ -n "$long" ] && [ "$long" = "$short" ]
check "short flags -m -p -n -s -c -t = long flags" $?
printf 'It is a truth universally\nacknowledged, that' > two-lines.txt
inline=$(gen --prompt "It is a truth universally
acknowledged, that" 2> /dev/null)
[ -n "$inline" ] && [ "$(gen -f two-lines.txt 2> /dev/null)" = "$inline" ]
check "-f FILE (2 lines) = the same text inline" $?
[ "$(gen --prompt - < two-lines.txt 2> /dev/null)" = "$inline" ]
check "--prompt - reads standard input" $?
printf 'It is a truth\nThe Congress\n' > two-prompts.txt
want=$(gen --prompts two-prompts.txt 2> /dev/null)
[ -n "$want" ] && [ "$(cat two-prompts.txt | gen --prompts - 2> /dev/null)" = "$want" ] &&
    [ "$(cat two-prompts.txt | gen --prompts /dev/stdin 2> /dev/null)" = "$want" ]
check "--prompts - and --prompts /dev/stdin (a pipe, read once) = --prompts FILE" $?

text=$'It is a truth universally acknowledged\nMr. Darcy'
[ "$(printf '%s\n' "$text" | "$tools/sparsetf-tok" -m "$model" encode)" = \
    "$(printf '%s\n' "$text" | "$tools/sparsetf-tok" -m "$spm" encode)" ]
check "sparsetf-tok --model X.stf uses the embedded tokenizer (ids = the .model's)" $?
"$tools/sparsetf-gen" --preset tiny-sparse --out plain.stf 2> /dev/null
expect_fail "tok: .stf without a tokenizer" "embeds no tokenizer" "$tools/sparsetf-tok" -m plain.stf info

expect_fail "bench: unknown variant, before any run" "unknown variant \`+foo\`" \
    timeout 5 "$tools/sparsetf-bench" --variants +foo
expect_fail "bench: unknown size, before any run" "unknown size \`7b\`" \
    timeout 5 "$tools/sparsetf-bench" --sizes 7b
expect_fail "gen: --tokenizer that is no tokenizer" "is not a SentencePiece model" \
    "$tools/sparsetf-gen" --preset tiny-sparse --tokenizer "$src/README.md" --out x.stf
[ ! -e x.stf ] && [ ! -e x.stf.partial ]
check "gen: nothing written after a bad --tokenizer" $?
expect_fail "gen: tokenizer larger than the vocabulary" "has 8000 pieces but the model's vocab_size is 512" \
    "$tools/sparsetf-gen" --preset tiny-sparse --tokenizer "$spm" --out x.stf
expect_fail "dist: --ranks without --plan" "--ranks N only applies to --plan" "$dist" -m "$model" -p x --ranks 3
expect_fail "dist: out-of-range id names the id only" "id 9000 is out of range" \
    "$dist" -m "$model" --prompt-tokens "1 9000 3 4 5"
out=$("$dist" -m "$model" --prompt-tokens "1 9000 3 4 5" 2>&1)
! grep -q "9000 3 4" <<< "$out"
check "dist: the out-of-range message does not print the rest of the line" $?
expect_fail "dist: -f missing file" "nope.txt: cannot open" "$dist" -m "$model" -f nope.txt
expect_fail "dist: two prompt sources" "give exactly one of" "$dist" -m "$model" -p x -f two-lines.txt

# --output-json: one object per session; its ids are the ones --print-tokens prints, its
# text the continuation of the text output
ids=$(gen --prompt "It is a truth" --temperature 0 --print-tokens 2> /dev/null | head -1)
textout=$(gen --prompt "It is a truth" --temperature 0 2> /dev/null)
gen --prompt "It is a truth" --temperature 0 --output-json > one.json 2> /dev/null
/usr/bin/python3 - one.json "$ids" "$textout" << 'PY'
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
assert len(objs) == 1, objs
o = objs[0]
assert " ".join(map(str, o["ids"])) == sys.argv[2], (o["ids"], sys.argv[2])
assert sys.argv[3] == "It is a truth" + o["text"], (sys.argv[3], o["text"])
assert o["end"] == "length" and o["prompt_tokens"] == 5 and o["ms_per_token"] > 0, o
PY
check "--output-json: ids = --print-tokens, text = the text output's continuation" $?
printf 'It is a truth\nThe Congress\nMr. Darcy\n' > three.txt
gen --prompts three.txt --output-json 2> /dev/null | /usr/bin/python3 -c '
import json, sys
objs = [json.loads(l) for l in sys.stdin]
assert sorted(o["session"] for o in objs) == [0, 1, 2], objs'
check "--output-json with 3 sessions: 3 objects" $?
# --stop: the text ends at the first stop string, the ids are a prefix of the unstopped run
gen --prompt "It is a truth" --temperature 0 --max-tokens 40 --stop "States" --output-json \
    > stop.json 2> /dev/null
full=$(gen --prompt "It is a truth" --temperature 0 --max-tokens 40 --print-tokens 2> /dev/null | head -1)
/usr/bin/python3 - stop.json "$full" << 'PY'
import json, sys
o = json.loads(open(sys.argv[1]).read())
full = sys.argv[2].split()
assert o["end"] == "stop" and o["text"].endswith("States"), o
assert o["text"].count("States") == 1, o
assert [str(i) for i in o["ids"]] == full[:len(o["ids"])] and len(o["ids"]) < len(full), (o, full)
PY
check "--stop: ends at the first stop string; ids a prefix of the unstopped run" $?
# repetition penalty: 1 is off (same ids), 1.3 changes greedy output and repeats less
base=$(gen --prompt "It is a truth" --temperature 0 --max-tokens 48 --print-tokens 2> /dev/null | head -1)
same=$(gen --prompt "It is a truth" --temperature 0 --max-tokens 48 --print-tokens --repeat-penalty 1 2> /dev/null | head -1)
pen=$(gen --prompt "It is a truth" --temperature 0 --max-tokens 48 --print-tokens --repeat-penalty 1.3 2> /dev/null | head -1)
distinct() { tr ' ' '\n' <<< "$1" | sort -u | wc -l; }
[ "$base" = "$same" ] && [ "$base" != "$pen" ] && [ "$(distinct "$pen")" -gt "$(distinct "$base")" ]
check "--repeat-penalty: 1 = off; 1.3 gives more distinct tokens ($(distinct "$base") -> $(distinct "$pen") of 48)" $?
expect_fail "dist: --stop without a tokenizer" "embeds no tokenizer" "$dist" -m plain.stf --prompt-tokens "1 2" --stop x
expect_fail "dist: negative --repeat-penalty" "--repeat-penalty must be" "$dist" -m "$model" -p x --repeat-penalty -1

# sparsetf-info: its tensor table equals what the numpy reference reads from the file itself
"$tools/sparsetf-info" "$model" --ranks 3 > info.txt 2> info.err
/usr/bin/python3 - "$model" info.txt "$src" << 'PY'
import re, sys
sys.path.insert(0, sys.argv[3] + "/tests/reference")
import reference as r
cfg, tensors, _ = r.load_model(sys.argv[1])
lines = open(sys.argv[2]).read().split("\n")
start = next(i for i, l in enumerate(lines) if l.startswith("tensors ("))
got = {}
for l in lines[start + 2:]:
    f = l.split()
    if not f or f[0] == "total":
        break
    m = re.match(r"\s*(\S+)\s+(.*?)\s+(f32|u8|q8_0)\s+(\d+)$", l)
    got[m.group(1)] = tuple(int(x) for x in m.group(2).split(" x "))
want = {n: tuple(a.shape) for n, a in tensors.items()}
assert got == want, set(got.items()) ^ set(want.items())
text = "\n".join(lines)
assert "SentencePiece" in text and "8000 pieces" in text, "tokenizer line"
assert "on 3 ranks" in text, "plan"
print("info: %d tensors as the reference reads them" % len(got))
PY
check "sparsetf-info: tensors = the reference's reading of the file; tokenizer; plan" $?
expect_fail "info: not a model" "not a sparsetf model file" "$tools/sparsetf-info" "$src/README.md"
expect_fail "info: too many ranks" "without an idle rank" "$tools/sparsetf-info" "$model" --ranks 9

echo "cli_conventions: $passes passed, $fails failed"
[ $fails -eq 0 ]
