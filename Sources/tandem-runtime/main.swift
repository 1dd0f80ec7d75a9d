import OCIRuntime
RuntimeMain.main()
