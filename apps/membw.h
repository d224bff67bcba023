/* Memory read bandwidth of this machine, for `kiln bench`'s decode limit. */
#ifndef KN_MEMBW_H
#define KN_MEMBW_H

/* Bytes per second that `threads` threads read from a 512 MiB buffer (best of a few passes), measured in a child
 * process so the buffer does not count in the caller's resident memory; 0 if it could not be measured. */
double kn_read_bandwidth(int threads);

#endif
