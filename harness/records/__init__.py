"""The contract between the halves: the record of one cell (``record``), the settings a suite leaves for its
readers (``settings``) and the results folder that holds both (``store``). Imports only ``core/``."""
