"""``python -m nkernels_vendor_gemm``: whether the vendor GEMM is in force on this machine, and why."""
from . import status

print(status())
