from docfinetune.cli import main

main()
