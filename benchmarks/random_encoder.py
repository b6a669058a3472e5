"""A copy of a text encoder with random weights, from its config and tokenizer alone.

    python benchmarks/random_encoder.py SOURCE_DIR OUT_DIR

For a machine the real weights cannot reach (the GPU machine lent to a session takes 64 MiB a
call; all-MiniLM-L6-v2's weights are 91 MB): carry the config and tokenizer files of
SOURCE_DIR, run this there, and pass text_encoder.name=OUT_DIR. Speed and memory figures do not
depend on the weights; quality figures do, and are meaningless with this copy.
"""

import sys

from transformers import AutoConfig, AutoModel, AutoTokenizer


def main(source: str, out: str) -> None:
    AutoModel.from_config(AutoConfig.from_pretrained(source)).save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
