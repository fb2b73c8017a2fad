"""Analysis of models: what a softmax backend does to an attention model
(:mod:`.softmax_eval`) and the short-range prior placed from the training data
(:mod:`.short_range`)."""
