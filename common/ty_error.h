/*  ty_error: one vocabulary of status codes for every trainyard module.
 *  TY_OK is 0; library errors are negative and live in one block here;
 *  positive values are errno. ty_strerror covers both (LMDB style). */
#ifndef TY_ERROR_H
#define TY_ERROR_H

#define TY_OK          0
#define TY_ENOTFOUND   (-30800)  /* no such job, worker, key */
#define TY_ESTALE      (-30801)  /* fenced: message of an old attempt */
#define TY_EPROTO      (-30802)  /* bad tag, undecodable or missing fields */
#define TY_EFULL       (-30803)  /* over a size limit */
#define TY_ETIMEDOUT   (-30804)  /* no answer in time */
#define TY_ESTORE      (-30805)  /* Redis unavailable or failed */
#define TY_EINVAL      (-30806)  /* bad argument or spec */
#define TY_ESTATE      (-30807)  /* transition not allowed from this state */
#define TY_EBROKER     (-30808)  /* the broker answered with an error */
#define TY_ECONNECT    (-30809)  /* cannot connect */
#define TY_ENOMEM      (-30810)
#define TY_EINTERNAL   (-30811)

/* A static string for any TY_E* code or errno value. Never NULL. */
const char *ty_strerror (int code);

#endif
