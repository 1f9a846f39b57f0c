"""Real adapters of the ports: ftplib, psycopg 3, smtplib, Jinja2, pyfilesystem2, the local disk."""
