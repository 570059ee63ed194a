"""The local stack: moto in server mode + the real template, handlers and job steps on one machine."""
