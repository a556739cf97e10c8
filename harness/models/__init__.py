"""The pretrained networks a cell starts from: encoder backbones (``backbones``) and the causal LMs of the prompt
baselines (``language_models``), each a registry of aliases to packaged weights, hub ids or local folders."""
