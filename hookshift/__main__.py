from hookshift.cli import main

main()
