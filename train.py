"""Train one configuration, or a sweep of them with -m (text2sign/cli/train.py).

    python train.py                                   # one run, scale=small on the synthetic data
    python train.py -m text_encoder=frozen,finetuned ema=true,false
    python train.py optimizer.lr=1e-4 seed=3          # any key can be overridden
"""

from text2sign.cli.train import main

if __name__ == "__main__":
    main()
