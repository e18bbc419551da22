# CUDA backend and NCCL transport. test_cuda_host (plain C: cuBLASLt layouts, int8 path choice, scratch
# sizes, plan cache, device selection, NCCL request/group logic) builds and runs everywhere. The gpu tests
# are built with CUDA and exit 77 (skipped, never passed) when no device is visible; test_gpu_nccl runs
# on 2 ranks and every rank skips unless each has its own GPU.
pp8_test(test_cuda_host SOURCES test_cuda_host.c LABELS unit cuda TIMEOUT 60)
# the prepared GPU check's scripts (launch/gpu-check.sh, gpu-kit.sh) on a machine without a GPU
pp8_script_test(test_gpu_check test_gpu_check.sh LABELS unit cli TIMEOUT 60)
if(PP8_HAVE_CUDA)
  pp8_test(test_gpu_int8_matmul SOURCES test_gpu_int8_matmul.c ARGS ${PP8_GOLDEN_DIR}/int8_matmul.safetensors
           LABELS gpu cuda TIMEOUT 120)
  pp8_test(test_gpu_ops SOURCES test_gpu_ops.c LABELS gpu cuda TIMEOUT 300)
  # the device conversions, exhaustively (all fp16 values, all 2^32 floats) against numerics.h's
  pp8_test(test_gpu_conv SOURCES test_gpu_conv.c LABELS gpu cuda TIMEOUT 120)
  # the v2 kernel set (PP8_CUDA_KERNELS=v2, cuda_v2.cu) under the same expectations as v1's
  add_test(NAME test_gpu_int8_matmul_v2 COMMAND test_gpu_int8_matmul ${PP8_GOLDEN_DIR}/int8_matmul.safetensors)
  add_test(NAME test_gpu_ops_v2 COMMAND test_gpu_ops)
  set_tests_properties(test_gpu_int8_matmul_v2 test_gpu_ops_v2 PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                       LABELS "gpu;cuda" ENVIRONMENT "PP8_CUDA_KERNELS=v2")
  if(PP8_HAVE_NCCL)
    pp8_test(test_gpu_nccl SOURCES test_gpu_nccl.c PROCS 2 LABELS gpu cuda nccl TIMEOUT 120)
    # one GPU shared by 2 and 3 ranks over NCCL, by both test routes (parallel/nccl_host.h); a refusal by
    # NCCL (multi before 2.30) skips
    # set-up against a rank that joins late (the PP8_NCCL_TIMEOUT deadline) or dies (GPU-PLAN.md 5, risk 4)
    pp8_script_test(test_gpu_nccl_faults test_gpu_nccl_faults.sh LABELS gpu cuda nccl TIMEOUT 180)
    foreach(route hostid multi)
      foreach(np 2 3)
        add_test(NAME test_gpu_nccl_${route}_${np} COMMAND ${PP8_MPIRUN} -np ${np} $<TARGET_FILE:test_gpu_nccl>)
        set_tests_properties(test_gpu_nccl_${route}_${np} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120
                             LABELS "gpu;cuda;nccl" ENVIRONMENT "PP8_NCCL_SHARED_GPU=${route}")
      endforeach()
    endforeach()
  endif()
endif()
if(PP8_HAVE_CUDA)
  pp8_script_test(test_gpu_golden test_gpu_golden.sh LABELS gpu cuda TIMEOUT 300)
  pp8_script_test(test_gpu_golden_v2 test_gpu_golden.sh LABELS gpu cuda TIMEOUT 300)
  set_property(TEST test_gpu_golden_v2 APPEND PROPERTY ENVIRONMENT "PP8_CUDA_KERNELS=v2")
  # inf/NaN in a stage's output on the GPU: the device-side record (finite_mark), read after the step's sync
  pp8_script_test(test_gpu_finite test_finite.sh ARGS --gpu LABELS gpu cuda mpi TIMEOUT 300)
  # the pipeline_identical checks on the CUDA backend, all ranks sharing one GPU (--share-gpus)
  pp8_script_test(test_gpu_pipeline test_pipeline.sh ARGS --gpu LABELS gpu cuda mpi TIMEOUT 900)
  if(PP8_HAVE_NCCL)
    # the same with NCCL between the ranks that share the GPU (the hostid route: any NCCL 2.x)
    pp8_script_test(test_gpu_pipeline_nccl test_pipeline.sh ARGS --gpu-nccl hostid LABELS gpu cuda mpi nccl TIMEOUT 900)
  endif()
endif()
