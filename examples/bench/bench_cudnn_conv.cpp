// halo-bench-cudnn-conv: the cuDNN ceiling for the five CosmoFlow-128 convolutions on one GPU.
//
//   halo-bench-cudnn-conv [batch ...]          (default: 4 8)
//
// For each batch size and precision (strict f32, TF32, bf16; channels-last), prints per layer
// the median time of forward, backward-data and backward-filter over 20 runs after warm-up,
// and TFLOP/s (2 x multiply-adds / time). Algorithms are chosen by measurement once per shape.
#include "cudnn_conv_bench.hpp"

int main(int argc, char** argv) { return halo::bench::cudnn_conv_main(argc, argv); }
