"""What a run does after training, with the weights its record reports: samples (the sample
clips of fixed prompts) and held_out (the metrics on held-out clips, caption retrieval).
run/job.py calls both; `python -m text2sign.cli.generate` writes clips with samples' writer.
"""
