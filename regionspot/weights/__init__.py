"""Real weights: where the published files are (``sources``), the model home (``home``), one verified and
resumable HTTP transfer (``transfer``), Hugging Face repositories file by file (``hub_files``), and the
whole ``regionspot download`` step — fetch, verify, convert, register (``install``)."""
