#!/bin/sh
# Rebuilds the test models in tests/tokenizer/ with Debian's SentencePiece trainer
# (package `sentencepiece` 0.1.97, /usr/bin/spm_train) from corpus.txt, which
# make_corpus.py builds from Debian package text. The committed .model files were made
# by exactly this script; the tests never retrain, they compare sparsetf-tok against
# /usr/bin/python3's sentencepiece on these files.
#
# usage: tests/tokenizer/make_models.sh [NAME...]
#   (from anywhere; writes next to this script; with NAMEs, only those models)
set -eu
cd "$(dirname "$0")"
[ -f corpus.txt ] || /usr/bin/python3 make_corpus.py corpus.txt

only="$*"
train() {
    name=$1
    shift
    case " ${only:-$name} " in *" $name "*) ;; *) return 0 ;; esac
    spm_train --input=corpus.txt --model_prefix="$name" --num_threads=2 --random_seed=17 \
        --minloglevel=2 --character_coverage=0.98 "$@"
    rm -f "$name.vocab"
}

# unigram, default nmt_nfkc normalisation; user-defined and control symbols
train unigram_nfkc --model_type=unigram --vocab_size=2000 \
    --user_defined_symbols='<sep>,[MASK],☃' --control_symbols='<ctl>'
# unigram, nmt_nfkc, byte fallback
train unigram_nfkc_bytes --model_type=unigram --vocab_size=2000 --byte_fallback=true
# unigram, identity normalisation, byte fallback, whitespace kept as is
train unigram_identity_bytes --model_type=unigram --vocab_size=1500 \
    --normalization_rule_name=identity --byte_fallback=true --remove_extra_whitespaces=false
# unigram, identity, no dummy prefix, digits split
train unigram_identity --model_type=unigram --vocab_size=1500 \
    --normalization_rule_name=identity --add_dummy_prefix=false --split_digits=true
# BPE, nmt_nfkc; user-defined symbols
train bpe_nfkc --model_type=bpe --vocab_size=2000 --user_defined_symbols='<sep>,[MASK],☃'
# BPE, nmt_nfkc, byte fallback
train bpe_nfkc_bytes --model_type=bpe --vocab_size=2000 --byte_fallback=true
# BPE, identity, whitespace as suffix
train bpe_identity --model_type=bpe --vocab_size=1500 --normalization_rule_name=identity \
    --treat_whitespace_as_suffix=true
# BPE, identity, byte fallback, whitespace kept as is
train bpe_identity_bytes --model_type=bpe --vocab_size=1500 --normalization_rule_name=identity \
    --byte_fallback=true --remove_extra_whitespaces=false
# char and word models (identity) for completeness
train char_identity --model_type=char --normalization_rule_name=identity --use_all_vocab=true \
    --vocab_size=4000 --hard_vocab_limit=false
train word_identity --model_type=word --normalization_rule_name=identity --vocab_size=2000
# custom normalisation and denormalisation rules (TSV of hex code points), which
# exercises charsmaps built from user rules and the decode-time denormalizer
printf '61\t41\n30A2\t3042\n2581\t5F\n' > custom_norm.tsv
printf '41\t61\n3042\t30A2\n66 69\t46 49\n' > custom_denorm.tsv
train unigram_custom_rules --model_type=unigram --vocab_size=2000 \
    --normalization_rule_tsv=custom_norm.tsv --denormalization_rule_tsv=custom_denorm.tsv
ls -l ./*.model
