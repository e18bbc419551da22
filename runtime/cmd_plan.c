/* PLACEHOLDER: being written; replaced before this is committed as done. */
#include "commands.h"

int cmd_plan(int argc, char **argv, Err *e)
{
    (void)argc;
    (void)argv;
    return err_set(e, "not implemented yet");
}
