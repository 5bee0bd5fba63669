#include "ty_error.h"
#include <string.h>

const char *
ty_strerror (int code)
{
    switch (code) {
    case TY_OK:         return "success";
    case TY_ENOTFOUND:  return "not found";
    case TY_ESTALE:     return "stale attempt (fenced)";
    case TY_EPROTO:     return "protocol error";
    case TY_EFULL:      return "size limit exceeded";
    case TY_ETIMEDOUT:  return "timed out";
    case TY_ESTORE:     return "state store (Redis) unavailable";
    case TY_EINVAL:     return "invalid argument";
    case TY_ESTATE:     return "not allowed in this state";
    case TY_EBROKER:    return "broker error";
    case TY_ECONNECT:   return "cannot connect";
    case TY_ENOMEM:     return "out of memory";
    case TY_EINTERNAL:  return "internal error";
    default:            break;
    }
    if (code > 0)
        return strerror (code);
    return "unknown error";
}
