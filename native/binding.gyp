# Build of the libtorch addon. Paths and flags come from scripts/find-libtorch.mjs, which honours
# LIBTORCH (a libtorch folder or a pip torch package) and otherwise finds Debian's libtorch-dev.
{
  "targets": [
    {
      "target_name": "engram",
      "sources": [
        "src/addon.cpp",
        "src/tensor_ops.cpp",
        "src/nn_ops.cpp",
        "src/autograd_ops.cpp",
        "src/fused_ops.cpp",
        "src/io_ops.cpp",
        "src/dist_ops.cpp",
        "src/precision_ops.cpp",
        "src/step_buffer_ops.cpp",
        "src/profiler_ops.cpp",
        "src/matmul_ops.cpp",
        "src/device_check_ops.cpp"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "<!@(node ../scripts/find-libtorch.mjs --field include)"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "_GLIBCXX_USE_CXX11_ABI=<!(node ../scripts/find-libtorch.mjs --field cxx11Abi)",
        "ENGRAM_LIBTORCH_CUDA=<!(node ../scripts/find-libtorch.mjs --field cudaFlag)",
        "ENGRAM_NCCL=<!(node ../scripts/find-libtorch.mjs --field ncclFlag)"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags_cc": ["-std=<!(node ../scripts/find-libtorch.mjs --field cxxStandard)", "-O2", "-fopenmp", "-fexceptions", "-frtti", "-Wno-unused-parameter"],
      "libraries": [
        "-L<!(node ../scripts/find-libtorch.mjs --field lib)",
        "-Wl,-rpath,<!(node ../scripts/find-libtorch.mjs --field lib)",
        "-Wl,--no-as-needed",
        "<!@(node ../scripts/find-libtorch.mjs --field libraries)",
        "-Wl,--as-needed"
      ]
    }
  ]
}
