// Placeholder: the browser client (connect, reconnect with backoff, resume,
// decode JSON and binary batches) is written on the ws-client branch and
// replaces this file. The server serves it at {httpNodeRoot}{path}/client.js.
export const placeholder = true;
