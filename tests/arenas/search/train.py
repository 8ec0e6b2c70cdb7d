"""The editable file of the search benchmark's arena: nine tunable constants, like arena/train.py's."""

MATRIX_LR = 0.04                       # Muon learning rate
EMBEDDING_LR = 0.6                     # Adam LR of the embeddings
UNEMBEDDING_LR = 0.004                 # Adam LR of the lm head
WARMDOWN_RATIO = 0.5                   # fraction of the budget spent decaying the LR
WEIGHT_DECAY = 0.2                     # decoupled weight decay of the matrices
DEPTH = 8                              # transformer blocks
TOTAL_BATCH_SIZE = 2**19               # tokens per optimizer step
SOFTCAP = 15.0                         # logit softcap (no effect in this arena)
ADAM_BETA1 = 0.8                       # Adam beta1 (no effect in this arena)
NOISE_SEED = 0                         # which noise draws this benchmark seed sees (never tuned)
