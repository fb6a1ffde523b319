"""Deployment helpers: the ``--py-files`` archive (:mod:`deploy.package`) and a standalone
Spark cluster from the installed pyspark (:mod:`deploy.standalone`)."""
