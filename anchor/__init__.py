"""The `anchor` command: one entry point that hands each sub-command to the package that runs it.

Each image installs only the packages it runs (the job image has job/, the controller image controller/, the
engine mock voicevox_standin/); this module imports none of them until a command is chosen.
"""
