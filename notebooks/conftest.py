"""nbval runs these notebooks with the kernel's working directory here, in the repository: the
candidates they write go to a temporary folder instead (``llmgw_kernel.lab.candidates_dir``)."""

import os
import tempfile

os.environ.setdefault("LLMGW_CANDIDATES_DIR", tempfile.mkdtemp(prefix="llmgw-nbval-candidates-"))
