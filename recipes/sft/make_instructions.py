#!/usr/bin/env python3
"""Writes instructions.jsonl beside this script: the instruction-tuning examples of
recipes/sft.toml, {"prompt", "response"} per line. Three small string tasks over a fixed word
list, drawn with a fixed seed, so the file is the same on every run:
    python3 recipes/sft/make_instructions.py"""
import json, os, random

WORDS = """apple river stone window garden letter morning silver paper candle forest bridge
market winter summer orange planet pocket yellow basket doctor engine finger island jacket
kitten ladder mirror needle pencil rabbit saddle ticket violin wallet anchor butter castle
dinner family guitar hammer kettle lemon meadow number parrot rocket sister tunnel valley
wonder yogurt branch cotton flower honey lantern mountain ocean pepper quiet shadow thunder
velvet whisper button circle desert feather harbor insect jungle marble nature puzzle riddle
spider tomato turtle voyage wizard""".split()

TASKS = [
    ("Upper: {w}\nAnswer:", lambda w: " " + w.upper()),
    ("Reverse: {w}\nAnswer:", lambda w: " " + w[::-1]),
    ("Double: {w}\nAnswer:", lambda w: " " + w + " " + w),
]


def main():
    rng = random.Random(20)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "instructions.jsonl")
    with open(path, "w") as out:
        for _ in range(600):
            word = rng.choice(WORDS)
            prompt, answer = rng.choice(TASKS)
            out.write(json.dumps({"prompt": prompt.format(w=word), "response": answer(word)}) + "\n")


if __name__ == "__main__":
    main()
