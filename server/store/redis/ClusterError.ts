/** A cluster node cannot start: Redis unreachable at start-up. Its own file, so that one node never loads ioredis to recognise it. */
export class ClusterError extends Error {}
