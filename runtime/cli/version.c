/* Build and host description. */
#include "version.h"

#include <mpi.h>
#include <string.h>

#include "../../kernels/cpu/cpu_linear.h"
#include "../../kernels/cuda_host.h"

const char *version_string(void) { return PP8_VERSION; }
extern const char pp8_git[]; /* build/runtime/pp8_git.c, written by runtime/cli/gitver.cmake at every build */
const char *version_git(void) { return pp8_git; }

const char *host_cpu_model(void)
{
    static char model[256];
    if (model[0]) return model;
    snprintf(model, sizeof model, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return model;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *p = strchr(line, ':');
            if (p) {
                p += 1 + (p[1] == ' ');
                p[strcspn(p, "\n")] = 0;
                snprintf(model, sizeof model, "%s", p);
            }
            break;
        }
    }
    fclose(f);
    return model;
}

void version_print(FILE *f)
{
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(mpi, &len);
    mpi[strcspn(mpi, ",\n")] = 0;
    fprintf(f, "pp8 %s (git %s)\n", PP8_VERSION, version_git());
    fprintf(f, "backends: cpu%s\n",
#ifdef PP8_HAVE_CUDA
            ", cuda (cuBLASLt)"
#else
            " (cuda: not built)"
#endif
    );
#ifdef PP8_HAVE_CUDA
    int ndev = backend_cuda_device_count();
    const char *why = backend_cuda_load_error();
    fprintf(f, "cuda devices visible: %d (%s code in libpp8_cuda.so, loaded only where a GPU can be "
               "visible; GPU path compiled, never run on a GPU in CI)%s%s\n",
            ndev, PP8_CUDA_ARCHS_TEXT, why ? "; " : "", why ? why : "");
#endif
    fprintf(f, "transport: mpi%s\n",
#ifdef PP8_HAVE_NCCL
            ", nccl"
#else
            " (nccl: not built)"
#endif
    );
    fprintf(f, "mpi: %s\n", mpi);
    fprintf(f, "cpu isa (this machine, chosen at run time): %s\n", cpu_isa_string());
}
