#!/bin/sh
# Regenerates the synthetic example data in examples/data/ (the files are
# committed; this shows exactly how they were made). Needs only awk.
set -e
cd "$(dirname "$0")/.."
g=gen
awk -v seed=1 -v n=40 -f $g/filenames.awk > filenames.csv
awk -v seed=11 -v n=10 -v offset=24 -f $g/filenames.awk > filenames-feedback.csv
awk -v seed=2 -v n=400 -v bad=1 -f $g/frames.awk > frames.jsonl
awk -v seed=3 -v n=600 -f $g/papers.awk > papers.csv
awk -v seed=4 -v users=150 -v items=240 -f $g/ratings.awk > ratings.csv
awk -v seed=5 -v n=300 -v task=personality -f $g/chat.awk > chat-personality.csv
awk -v seed=6 -v n=300 -v task=engagement -f $g/chat.awk > chat-engagement.csv
awk -v seed=7 -v n=60 -v task=personality -v src=feedback -f $g/chat.awk > chat-feedback.csv
