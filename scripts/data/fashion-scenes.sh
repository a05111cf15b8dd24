#!/usr/bin/env bash
# FashionScenes: a dataset in the folder format that no preset was tuned on (issue "A fair
# comparison": the default presets must show the same direction on data that is not built in).
#
# DigitScenes' canvas generator with the roles of its two image sets swapped: Fashion-MNIST
# items (data/fashion-3k, 3,000 real images, ten classes) are the objects to segment, and
# MNIST digits (data/mnist-10k) are pasted in as the anomalies. Same canvas size (64x64),
# object counts, scales and labelling rule as DigitScenes, so the difference is the objects:
# filled garments with texture instead of thin strokes. The item split is DigitScenes' (70%
# train, 10% tune, 20% test, disjoint), here over the 3,000 Fashion items.
#
# Usage: scripts/data/fashion-scenes.sh [OUT]   (default data/fashion-scenes; needs a
# release build of gmmseg, or GMMSEG_BIN). Replaces OUT whole. Then:
#   gmmseg ablate main_results --profile quick --dataset folder:data/fashion-scenes
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-data/fashion-scenes}
bin=${GMMSEG_BIN:-target/release/gmmseg}
[ -x "$bin" ] || { echo "error: $bin not found: run cargo build --release first" >&2; exit 1; }
for d in data/fashion-3k data/mnist-10k; do
    [ -f "$d/images-idx3-ubyte.gz" ] || { echo "error: $d/images-idx3-ubyte.gz missing" >&2; exit 1; }
done
swap=$(mktemp -d)
stage="$out.partial"
trap 'rm -rf "$swap" "$stage"' EXIT
# DigitScenes reads its objects from mnist-10k/ and its anomalies from fashion-3k/
ln -s "$PWD/data/fashion-3k" "$swap/mnist-10k"
ln -s "$PWD/data/mnist-10k" "$swap/fashion-3k"
rm -rf "$stage"
mkdir -p "$stage"
# the split lengths of DigitScenes' defaults (train 2,000, tune 500, test 500; anomaly = the
# test canvases with digits pasted in)
for pair in train:train:2000 tune:tune:500 val:test:500 anomaly:anomaly:500; do
    IFS=: read -r name split count <<<"$pair"
    GMMSEG_DATA_DIR="$swap" "$bin" data export --dataset digitscenes --split "$split" \
        --count "$count" --out "$stage/$name" >/dev/null
done
{
    echo background
    printf '%s\n' "T-shirt/top" Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag "Ankle boot"
} >"$stage/classes.txt"
for name in train tune val anomaly; do
    cp "$stage/classes.txt" "$stage/$name/classes.txt"
done
rm -rf "$out"
mv "$stage" "$out"
echo "wrote $out: $(ls "$out/train/images" | wc -l) train, $(ls "$out/tune/images" | wc -l) tune, $(ls "$out/val/images" | wc -l) val, $(ls "$out/anomaly/images" | wc -l) anomaly images"
