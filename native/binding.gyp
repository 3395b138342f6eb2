# The adabatch native addon (N-API, C++17): oneDNN matmul (f32 and bf16) plus vectorised kernels,
# and the collectives of data parallelism (threads always; MPI when mpi.h is found, see
# mpi-config.mjs). libdnnl is Debian's libdnnl-dev; it runs on libgomp, linked for omp_set_num_threads.
#
#   Release: -O3 for x86-64-v3 (AVX2 + FMA; runs on Zen 4 and Intel AVX-512 machines alike,
#            oneDNN picks its own AVX-512 / AMX kernels at run time). Never -march=native.
#   Debug:   AddressSanitizer build used by `npm run test:asan` (load with LD_PRELOAD=libasan).
{
  'targets': [
    {
      'target_name': 'adabatch',
      'sources': [
        'src/addon.cc',
        'src/registry.cc',
        'src/thread_pool.cc',
        'src/args.cc',
        'src/context.cc',
        'src/bind_memory.cc',
        'src/bind_math.cc',
        'src/bind_optim.cc',
        'src/bind_layers.cc',
        'src/elementwise.cc',
        'src/gemm.cc',
        'src/peak_probe.cc',
        'src/norm.cc',
        'src/embedding.cc',
        'src/rope.cc',
        'src/attention.cc',
        'src/attention_decode.cc',
        'src/swiglu.cc',
        'src/head_loss.cc',
        'src/adamw.cc',
        'src/optimizers.cc',
        'src/comm.cc',
        'src/comm_threads.cc',
      ],
      'include_dirs': ["<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions', '-std=gnu++17', '-std=gnu++20'],
      'cflags_cc': [
        '-std=c++17', '-fexceptions', '-march=x86-64-v3', '-mtune=generic',
        '-fopenmp-simd', '-fno-math-errno', '-fno-trapping-math', '-Wall', '-Wextra', '-Wno-unused-parameter',
      ],
      'libraries': ['-ldnnl', '-lgomp', '-lpthread'],
      'conditions': [
        ['<!(node mpi-config.mjs available)==1', {
          'sources': ['src/comm_mpi.cc'],
          'defines': ['OMPI_SKIP_MPICXX=1', 'MPICH_SKIP_MPICXX=1'],
          'cflags_cc': ['<!@(node mpi-config.mjs cflags)'],
          'libraries': ['<!@(node mpi-config.mjs libs)'],
        }, {
          'sources': ['src/comm_mpi_stub.cc'],
        }],
      ],
      'configurations': {
        'Release': {
          'cflags_cc': ['-O3'],
        },
        'Debug': {
          'cflags_cc': ['-O1', '-g', '-fsanitize=address', '-fno-omit-frame-pointer'],
          'ldflags': ['-fsanitize=address'],
        },
      },
    },
  ],
}
