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
for t in sparsetf-dist sparsetf-gen sparsetf-tok sparsetf-bench sparsetf-tok-bench; do
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

echo "cli_conventions: $passes passed, $fails failed"
[ $fails -eq 0 ]
