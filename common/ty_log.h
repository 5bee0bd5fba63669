/*  ty_log: leveled logs stamped with time, process, file:line:func.
 *  Written to stderr (or a file); thread-safe because each line is one write(2). */
#ifndef TY_LOG_H
#define TY_LOG_H

typedef enum {
    TY_LOG_DEBUG = 0,
    TY_LOG_INFO  = 1,
    TY_LOG_WARN  = 2,
    TY_LOG_ERROR = 3,
} ty_log_level_t;

/* Set the process name shown on each line and the minimum level. */
void ty_log_init (const char *name, ty_log_level_t level);
/* Parse "debug|info|warn|error"; returns -1 if unknown. */
int  ty_log_level_parse (const char *s);
ty_log_level_t ty_log_level (void);
/* Redirect to a file (append); returns 0 or errno. */
int  ty_log_file (const char *path);

void ty_log_write (ty_log_level_t lvl, const char *file, int line,
                   const char *func, const char *fmt, ...)
    __attribute__ ((format (printf, 5, 6)));

#define ty_debug(...) do { if (ty_log_level () <= TY_LOG_DEBUG) \
    ty_log_write (TY_LOG_DEBUG, __FILE__, __LINE__, __func__, __VA_ARGS__); } while (0)
#define ty_info(...)  ty_log_write (TY_LOG_INFO,  __FILE__, __LINE__, __func__, __VA_ARGS__)
#define ty_warn(...)  ty_log_write (TY_LOG_WARN,  __FILE__, __LINE__, __func__, __VA_ARGS__)
#define ty_error(...) ty_log_write (TY_LOG_ERROR, __FILE__, __LINE__, __func__, __VA_ARGS__)

#define TY_UNUSED(x) (void) (x)

#endif
